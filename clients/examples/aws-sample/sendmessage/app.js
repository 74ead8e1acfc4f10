// sendmessage: posts the message's "data" to every connection in the
// table through the management API, its endpoint built from the event
// (https://{domainName}/{stage}) as AWS's sample builds it; a connection
// that is gone (410) is removed from the table.
import { DynamoDBClient, DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

const ddb = new DynamoDBClient({ region: process.env.AWS_REGION });
const docClient = DynamoDBDocumentClient.from(ddb);
const { TABLE_NAME } = process.env;

const gone = (e) => e.statusCode === 410 || e.$metadata?.httpStatusCode === 410;

export const handler = async (event) => {
  const { domainName, stage } = event.requestContext;
  let connections;
  try {
    connections = await docClient.send(new ScanCommand({ TableName: TABLE_NAME, ProjectionExpression: 'connectionId' }));
  } catch (e) {
    return { statusCode: 500, body: e.stack };
  }
  const api = new ApiGatewayManagementApiClient({ endpoint: `https://${domainName}/${stage}` });
  const data = JSON.parse(event.body).data;
  const posts = connections.Items.map(async ({ connectionId }) => {
    try {
      await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
    } catch (e) {
      if (!gone(e)) throw e;
      console.log(`stale connection ${connectionId}: removed`);
      await ddb.send(new DeleteItemCommand({ TableName: TABLE_NAME, Key: { connectionId: { S: connectionId } } }));
    }
  });
  try {
    await Promise.all(posts);
  } catch (e) {
    return { statusCode: 500, body: e.stack };
  }
  return { statusCode: 200, body: 'Data sent.' };
};
