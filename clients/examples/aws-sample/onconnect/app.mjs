// $connect: remember the connection in the table (an ES module handler).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';

const table = DynamoDBDocumentClient.from(new DynamoDBClient({}));

export const handler = async (event) => {
  await table.send(new PutCommand({
    TableName: process.env.TABLE_NAME,
    Item: { connectionId: event.requestContext.connectionId, since: Date.now() },
  }));
  return { statusCode: 200, body: 'Connected.' };
};
