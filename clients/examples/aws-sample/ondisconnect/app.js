// $disconnect: forgets the connection (the low-level client and an
// attribute value, as the sample's send handler deletes).
import { DynamoDBClient, DeleteItemCommand } from '@aws-sdk/client-dynamodb';

const ddb = new DynamoDBClient({ region: process.env.AWS_REGION });

export const handler = async (event) => {
  const key = { connectionId: { S: event.requestContext.connectionId } };
  try {
    await ddb.send(new DeleteItemCommand({ TableName: process.env.TABLE_NAME, Key: key }));
  } catch (err) {
    return { statusCode: 500, body: `Failed to disconnect: ${JSON.stringify(err)}` };
  }
  return { statusCode: 200, body: 'Disconnected.' };
};
