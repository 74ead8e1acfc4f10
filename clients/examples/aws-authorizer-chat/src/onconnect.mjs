// $connect (after the authorizer): keeps the connection ID, with the
// low-level client and attribute values.
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';

const client = new DynamoDBClient({ region: process.env.AWS_REGION });

export const handler = async (event) => {
  const { connectionId, authorizer } = event.requestContext;
  try {
    await client.send(new PutItemCommand({
      TableName: process.env.TABLE_NAME,
      Item: { connectionId: { S: connectionId }, user: { S: authorizer?.principalId ?? 'nobody' } },
    }));
  } catch (err) {
    return { statusCode: 500, body: `Failed to connect: ${JSON.stringify(err)}` };
  }
  return { statusCode: 200, body: 'Connected.' };
};
