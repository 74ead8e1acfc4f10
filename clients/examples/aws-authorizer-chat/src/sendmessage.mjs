// sendmessage: sends the message's "data" to every connection. The
// management endpoint is built from the environment, as the pattern does:
// https://{API_ID}.execute-api.{AWS_REGION}.amazonaws.com/{STAGE}/ (on
// wsgate, lambda-runner sends those calls to the gateway).
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

const ddbClient = new DynamoDBClient({ region: process.env.AWS_REGION });

export const handler = async (event) => {
  const { API_ID, AWS_REGION, STAGE, TABLE_NAME } = process.env;
  const { Items } = await ddbClient.send(new ScanCommand({ TableName: TABLE_NAME, ProjectionExpression: 'connectionId' }));
  const endpoint = `https://${API_ID}.execute-api.${AWS_REGION}.amazonaws.com/${STAGE}/`;
  const api = new ApiGatewayManagementApiClient({ apiVersion: '2018-11-29', endpoint });
  const { data } = JSON.parse(event.body);
  try {
    await Promise.all(Items.map(({ connectionId }) => api.send(new PostToConnectionCommand({
      ConnectionId: connectionId.S, Data: Buffer.from(String(data)),
    }))));
  } catch (err) {
    return { statusCode: 500, body: `Failed to send: ${JSON.stringify(err)}` };
  }
  return { statusCode: 200, body: 'Data sent' };
};
