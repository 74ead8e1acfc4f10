// sendmessage: posts the message's data to every connection, through the
// management API at the endpoint AWS would give this API. The endpoint is
// written here as on AWS; lambda-runner sends its calls to wsgate.
import { ApiGatewayManagementApiClient, PostToConnectionCommand, GoneException }
  from '@aws-sdk/client-apigatewaymanagementapi';
import connections from '../lib/connections.cjs';

const client = new ApiGatewayManagementApiClient({
  endpoint: 'https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/Prod',
});

export const handler = async (event, context) => {
  const { data } = JSON.parse(event.body);
  const text = `${process.env.GREETING} ${data}`;
  await Promise.all(connections.all().map(async (id) => {
    try {
      await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: text }));
    } catch (e) {
      if (e instanceof GoneException || e.$metadata?.httpStatusCode === 410) connections.remove(id);
      else throw e;
    }
  }));
  return { statusCode: 200, body: 'Data sent.' };
};
