// $disconnect: forget the connection (a CommonJS handler with a callback).
const connections = require('../lib/connections.cjs');

exports.handler = function (event, context, callback) {
  connections.remove(event.requestContext.connectionId);
  callback(null, { statusCode: 200, body: 'Disconnected.' });
};
