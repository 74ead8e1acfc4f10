// $connect: remember the connection (an ES module handler).
import connections from '../lib/connections.cjs';

export const handler = async (event) => {
  connections.put(event.requestContext.connectionId);
  return { statusCode: 200, body: 'Connected.' };
};
