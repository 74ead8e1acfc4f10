// sendmessage: posts the message's data to every connection in the table,
// through the management API at the endpoint AWS would give this API. The
// endpoint is written here as on AWS; lambda-runner sends its calls to
// wsgate.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand, DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { ApiGatewayManagementApiClient, PostToConnectionCommand, GoneException }
  from '@aws-sdk/client-apigatewaymanagementapi';

const table = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const api = new ApiGatewayManagementApiClient({
  endpoint: 'https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/Prod',
});

export const handler = async (event) => {
  const { TABLE_NAME: TableName, GREETING } = process.env;
  const { data } = JSON.parse(event.body);
  const { Items } = await table.send(new ScanCommand({ TableName, ProjectionExpression: 'connectionId' }));
  await Promise.all(Items.map(async ({ connectionId }) => {
    try {
      await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: `${GREETING} ${data}` }));
    } catch (e) {
      if (!(e instanceof GoneException)) throw e;
      await table.send(new DeleteCommand({ TableName, Key: { connectionId } }));
    }
  }));
  return { statusCode: 200, body: 'Data sent.' };
};
