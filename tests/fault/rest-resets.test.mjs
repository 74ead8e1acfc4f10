// REST requests on the gateway listener and management API requests that
// reset mid-body, during a backend call, and while pipelined.
import {
  faultTest, closedOf, raceScenario, openSocket, hangUp, jitter, httpRequest,
} from './lib.mjs';

faultTest('REST requests reset mid-body, during a backend call and while pipelined leave the gateway clean', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'REST',
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp } = await openSocket(gw.port);
      const closed = closedOf(tcp);
      switch ((i + 1000) % 3) {
        case 0: { // mid-body
          const req = httpRequest('POST', `/rest/b${i}`, 'x'.repeat(jitter(0, 999)), { declared: 1000 });
          tcp.write(req, () => setTimeout(() => hangUp(tcp, i), jitter(0, 3)));
          break;
        }
        case 1: // during a backend call
          tcp.write(httpRequest('GET', `/rest/c${i}/slow`));
          setTimeout(() => hangUp(tcp, i), jitter(1, 60));
          break;
        default: // pipelined, some at the backend, some waiting
          tcp.write(httpRequest('GET', `/rest/p${i}/a`) + httpRequest('POST', `/rest/p${i}/slow`, 'body')
            + httpRequest('GET', `/rest/p${i}/b`));
          setTimeout(() => hangUp(tcp, i), jitter(0, 40));
      }
      await closed;
    },
  });
});

faultTest('management requests reset mid-body and before their answer leave the gateway clean', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'management',
    total: 1000,
    width: 40,
    race: async ({ gw, backend }, i) => {
      const ids = backend.approved();
      const id = ids.length ? ids[(i + 1000) % ids.length] : 'AAAAAAAAAAAAAAAA';
      const { tcp } = await openSocket(gw.mgmtPort);
      const closed = closedOf(tcp);
      const req = (i + 1000) % 3 === 0
        ? httpRequest('POST', `/dev/@connections/${id}`, 'y'.repeat(jitter(0, 199)), { declared: 200 })
        : httpRequest((i + 1000) % 3 === 1 ? 'GET' : 'POST', `/@connections/${id}`, 'z');
      tcp.write(req, () => setTimeout(() => hangUp(tcp, i), jitter(0, 2)));
      await closed;
    },
  });
});
