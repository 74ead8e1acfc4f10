// A minimal AWS_PROXY backend for wsgate: node:http only, no packages.
// It accepts every $connect, logs each event and echoes message bodies back.
//
//   PORT=9000 node clients/examples/backend.mjs
//   wsgate --routes routes/example.json ...
import http from 'node:http';

const port = Number(process.env.PORT || 9000);

function handle(event) {
  const { eventType, connectionId } = event.requestContext;
  console.log(`${eventType} ${connectionId}`, event.body ?? '');
  if (eventType === 'MESSAGE') {
    return { statusCode: 200, body: `echo: ${event.body}` };
  }
  return { statusCode: 200 }; // CONNECT: accept everyone; DISCONNECT: answer ignored
}

http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/events') {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    let reply;
    try {
      reply = handle(JSON.parse(body));
    } catch (err) {
      reply = { statusCode: 500, body: String(err) };
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reply));
  });
}).listen(port, () => console.log(`backend listening on http://127.0.0.1:${port}/events`));
