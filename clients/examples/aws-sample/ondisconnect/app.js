// $disconnect: forget the connection (a CommonJS handler with a callback).
const { DynamoDBClient } = require('@aws-sdk/client-dynamodb');
const { DynamoDBDocumentClient, DeleteCommand } = require('@aws-sdk/lib-dynamodb');

const table = DynamoDBDocumentClient.from(new DynamoDBClient({}));

exports.handler = function (event, context, callback) {
  table.send(new DeleteCommand({
    TableName: process.env.TABLE_NAME,
    Key: { connectionId: event.requestContext.connectionId },
  })).then(() => callback(null, { statusCode: 200, body: 'Disconnected.' }), callback);
};
