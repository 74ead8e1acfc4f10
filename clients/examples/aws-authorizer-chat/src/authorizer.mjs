// The $connect authorizer (a REQUEST authorizer, callback style): a client
// whose "token" header is CHAT_TOKEN is allowed; any other gets "Unauthorized",
// which API Gateway (and wsgate) answer with 401.
const policy = (principalId, effect, resource) => ({
  principalId,
  policyDocument: {
    Version: '2012-10-17',
    Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }],
  },
  context: { token: 'checked' },
});

export const handler = function (event, context, callback) {
  if (event.headers.token === process.env.CHAT_TOKEN)
    callback(null, policy('chat-user', 'Allow', event.methodArn));
  else
    callback('Unauthorized');
};
