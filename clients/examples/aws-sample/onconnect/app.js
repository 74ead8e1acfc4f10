// $connect: keeps the new connection's ID in the table (AWS SDK v3, the
// document client, as AWS's sample).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';

const ddb = new DynamoDBClient({ region: process.env.AWS_REGION });
const docClient = DynamoDBDocumentClient.from(ddb);

export const handler = async (event) => {
  const item = { connectionId: event.requestContext.connectionId };
  try {
    await docClient.send(new PutCommand({ TableName: process.env.TABLE_NAME, Item: item }));
  } catch (err) {
    return { statusCode: 500, body: `Failed to connect: ${JSON.stringify(err)}` };
  }
  return { statusCode: 200, body: 'Connected.' };
};
