/* libwsgate (clients/libwsgate): endpoints, the bytes of each request,
 * SigV4 signatures against values computed apart (Python's hmac/hashlib,
 * AWS's canonical form written out by hand) and against the gateway's own
 * verifier, then the non-blocking state machine against a listener in
 * this process: answers, errors, refused connects, garbage. */
#include "sigv4.h"
#include "unit.h"
#include "wsgate_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define NOW 1440938160LL /* 2015-08-30T12:36:00Z */
#define CONN_ID "AAAAAAAAAAAAAAAAAAAAAAAA"

static wsgate_client_t *client(const char *endpoint)
{
	wsgate_client_t *c = NULL;
	char err[256];

	CHECK_INT_EQ(wsgate_client_create(&c, endpoint, err, sizeof(err)), WSGATE_OK);
	return c;
}

static char *request(wsgate_client_t *c, wsgate_call_t call)
{
	char *out = NULL;
	size_t len = 0;

	CHECK_INT_EQ(wsgate_build_request(c, &call, NOW, &out, &len), WSGATE_OK);
	return out ? out : strdup("");
}

static void test_endpoints(void)
{
	static const char *const bad[] = { "ftp://x", "http://", "http://h:99999",
					   "http://h:x", "http://h/p?q", "localhost:8081",
					   "http://[::1" };
	wsgate_client_t *c;
	char err[256], *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT_EQ(wsgate_client_create(&c, bad[i], err, sizeof(err)), WSGATE_ERR_ARG);
		CHECK(c == NULL);
		CHECK_CONTAINS(err, "Invalid endpoint");
	}
	c = client("http://[::1]:8081/prod/");
	r = request(c, (wsgate_call_t){ .op = WSGATE_DELETE, .target = CONN_ID });
	CHECK_CONTAINS(r, "DELETE /prod/@connections/" CONN_ID " HTTP/1.1\r\n");
	CHECK_CONTAINS(r, "\r\nHost: [::1]:8081\r\n");
	CHECK(!strstr(r, "Content-Length"));
	CHECK(!strstr(r, "Authorization"));
	free(r);
	wsgate_client_destroy(c);
	c = client("https://gw.example.com");
	r = request(c, (wsgate_call_t){ .op = WSGATE_GET, .target = "a b/c=" });
	CHECK_CONTAINS(r, "GET /@connections/a%20b%2Fc= HTTP/1.1\r\nHost: gw.example.com\r\n");
	free(r);
	wsgate_client_destroy(c);
}

static void test_request_bytes(void)
{
	wsgate_client_t *c = client("http://127.0.0.1:8081/dev");
	char *r, *out = NULL;
	size_t len;
	wsgate_call_t bad = { .op = WSGATE_POST, .target = "x\r\nEvil: 1" };

	r = request(c, (wsgate_call_t){ .op = WSGATE_POST, .target = CONN_ID, .data = "hi\0there",
				       .len = 8 });
	CHECK_CONTAINS(r, "POST /dev/@connections/" CONN_ID " HTTP/1.1\r\n");
	CHECK_CONTAINS(r, "\r\nContent-Length: 8\r\n");
	CHECK_CONTAINS(r, "\r\nConnection: close\r\n\r\nhi");
	CHECK_MEM_EQ(strstr(r, "\r\n\r\n") + 4, 8, "hi\0there", 8);
	free(r);
	r = request(c, (wsgate_call_t){ .op = WSGATE_POST, .target = CONN_ID });
	CHECK_CONTAINS(r, "\r\nContent-Length: 0\r\n");
	free(r);
	r = request(c, (wsgate_call_t){ .op = WSGATE_LIST, .limit = 10, .cursor = "ab/c" });
	CHECK_CONTAINS(r, "GET /dev/@connections?limit=10&cursor=ab%2Fc HTTP/1.1\r\n");
	free(r);
	r = request(c, (wsgate_call_t){ .op = WSGATE_LIST });
	CHECK_CONTAINS(r, "GET /dev/@connections HTTP/1.1\r\n");
	free(r);
	r = request(c, (wsgate_call_t){ .op = WSGATE_LIST, .channel = "room:1" });
	CHECK_CONTAINS(r, "GET /dev/@connections?channel=room%3A1 HTTP/1.1\r\n");
	free(r);
	r = request(c, (wsgate_call_t){ .op = WSGATE_PUBLISH, .target = "room-1", .data = "x",
				       .len = 1 });
	CHECK_CONTAINS(r, "POST /dev/@channels/room-1 HTTP/1.1\r\n");
	free(r);
	/* No header injection through an ID; a target is required. */
	CHECK_INT_EQ(wsgate_build_request(c, &bad, NOW, &out, &len), WSGATE_ERR_ARG);
	bad = (wsgate_call_t){ .op = WSGATE_GET };
	CHECK_INT_EQ(wsgate_build_request(c, &bad, NOW, &out, &len), WSGATE_ERR_ARG);
	CHECK(out == NULL);
	wsgate_client_destroy(c);
}

/* The Authorization header's signature, from the bytes. */
static void signature_of(const char *r, char out[65])
{
	const char *s = strstr(r, "Signature=");

	out[0] = '\0';
	CHECK(s != NULL);
	if (s)
		snprintf(out, 65, "%.64s", s + 10);
}

/* Values from an independent SigV4 (Python's hmac and hashlib over the
 * canonical request written out: "@" escaped twice, the query sorted). */
static void test_signature_vectors(void)
{
	wsgate_client_t *c = client("http://localhost:8081/prod");
	char *r, sig[65];

	CHECK_INT_EQ(wsgate_client_set_credentials(c, AKID, SECRET, NULL, "eu-west-1"), 0);
	r = request(c, (wsgate_call_t){ .op = WSGATE_POST, .target = CONN_ID, .data = "hello",
				       .len = 5 });
	CHECK_CONTAINS(r, "\r\nX-Amz-Date: 20150830T123600Z\r\n");
	CHECK_CONTAINS(r, "\r\nX-Amz-Content-Sha256: "
		       "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\r\n");
	CHECK_CONTAINS(r, "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
		       "eu-west-1/execute-api/aws4_request, SignedHeaders=host;"
		       "x-amz-content-sha256;x-amz-date, Signature=");
	signature_of(r, sig);
	CHECK_STR_EQ(sig, "5d54c6fa7182d5fc4f01f5e918900c9ad2aff2663b2c94fd2aebba33352bb9a2");
	free(r);
	r = request(c, (wsgate_call_t){ .op = WSGATE_LIST, .limit = 10, .cursor = "ab/c" });
	signature_of(r, sig);
	CHECK_STR_EQ(sig, "f3bc0b899b576e8f5d6477786d6fbc7c66feed8b994312ed7006e10d7e87b510");
	free(r);
	wsgate_client_destroy(c);
}

/* --- the gateway's verifier on the bytes the client sends --- */

struct parsed {
	char method[16];
	char path[1024];
	char query_buf[1024];
	gw_str_t query[4];
	size_t n_query;
	char names[16][64];
	char values[16][512];
	size_t n;
	const char *body;
	size_t body_len;
};

static void pct_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '%' && s[1] && s[2]) {
			char h[3] = { s[1], s[2], 0 };

			*o++ = (char)strtol(h, NULL, 16);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

static void parse(const char *r, size_t len, struct parsed *p)
{
	const char *line = strstr(r, "\r\n") + 2, *end = strstr(r, "\r\n\r\n");
	char target[1024], *q;

	memset(p, 0, sizeof(*p));
	sscanf(r, "%15s %1023s", p->method, target);
	q = strchr(target, '?');
	if (q) {
		*q++ = '\0';
		snprintf(p->query_buf, sizeof(p->query_buf), "%s", q);
		for (char *a = strtok(p->query_buf, "&"); a && p->n_query < 4; a = strtok(NULL, "&")) {
			pct_decode(a);
			p->query[p->n_query++] = (gw_str_t){ a, strlen(a) };
		}
	}
	snprintf(p->path, sizeof(p->path), "%s", target);
	pct_decode(p->path);
	while (line < end && p->n < 16) {
		const char *colon = strchr(line, ':'), *eol = strstr(line, "\r\n");
		size_t nl = (size_t)(colon - line);

		for (size_t i = 0; i < nl && i < 63; i++)
			p->names[p->n][i] = (char)(line[i] | ((line[i] >= 'A' && line[i] <= 'Z') ? 32 : 0));
		snprintf(p->values[p->n], 512, "%.*s", (int)(eol - colon - 2), colon + 2);
		p->n++;
		line = eol + 2;
	}
	p->body = end + 4;
	p->body_len = len - (size_t)(p->body - r);
}

static int parsed_header(void *user, const char *name, gw_buf_t *out)
{
	const struct parsed *p = user;

	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->names[i], name)) {
			gw_buf_append_str(out, p->values[i]);
			return 0;
		}
	return -1;
}

static enum gw_sigv4_status verify(const char *r, size_t len, const char *secret,
				   long long now)
{
	struct parsed p;
	gw_sigv4_t v;
	gw_sigv4_request_t req;
	enum gw_sigv4_status st;
	char why[512];

	parse(r, len, &p);
	req = (gw_sigv4_request_t){ p.method, p.path, strlen(p.path), p.query, p.n_query,
				    parsed_header, &p };
	gw_sigv4_init(&v);
	st = gw_sigv4_begin(&v, &req, "execute-api", now, 900, why, sizeof(why));
	if (!st)
		st = gw_sigv4_finish(&v, secret, strlen(secret), p.body, p.body_len, why,
				     sizeof(why));
	gw_sigv4_dispose(&v);
	return st;
}

static void test_verifier_accepts(void)
{
	wsgate_call_t calls[] = {
		{ .op = WSGATE_POST, .target = CONN_ID, .data = "h\xc3\xa9llo\0x", .len = 8 },
		{ .op = WSGATE_GET, .target = "id=with:pchars@" },
		{ .op = WSGATE_DELETE, .target = "sp ace" },
		{ .op = WSGATE_LIST, .limit = 5, .cursor = "0100002a" },
		{ .op = WSGATE_LIST, .channel = "room:1.a", .cursor = "x y" },
		{ .op = WSGATE_PUBLISH, .target = "room", .data = "{}", .len = 2 },
	};
	wsgate_client_t *c = client("http://127.0.0.1:9/stage");

	CHECK_INT_EQ(wsgate_client_set_credentials(c, "AKIAOPS", "s3cr3t", "tok", NULL), 0);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		char *r = NULL;
		size_t len = 0;

		CHECK_INT_EQ(wsgate_build_request(c, &calls[i], NOW, &r, &len), WSGATE_OK);
		if (!r)
			continue;
		CHECK_CONTAINS(r, "us-east-1/execute-api/aws4_request");
		CHECK_CONTAINS(r, "\r\nX-Amz-Security-Token: tok\r\n");
		CHECK_MSG(verify(r, len, "s3cr3t", NOW) == GW_SIGV4_OK, "call %zu:\n%s", i, r);
		CHECK_INT_EQ(verify(r, len, "wrong", NOW), GW_SIGV4_MISMATCH);
		CHECK_INT_EQ(verify(r, len, "s3cr3t", NOW + 3600), GW_SIGV4_EXPIRED);
		if (calls[i].len) {
			r[len - 1] ^= 1; /* a tampered body */
			CHECK_INT_EQ(verify(r, len, "s3cr3t", NOW), GW_SIGV4_MISMATCH);
		}
		free(r);
	}
	wsgate_client_destroy(c);
}

/* --- the state machine against a listener in this process --- */

static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	CHECK(!bind(fd, (struct sockaddr *)&a, sizeof(a)));
	CHECK(!listen(fd, 4));
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Steps r until done, serving one connection on lfd with `answer` (sent
 * once the request's head has arrived). */
static int drive(wsgate_req_t *r, int lfd, const char *answer, char *seen, size_t seen_len)
{
	int sfd = -1, rc, answered = 0;
	size_t got = 0;

	seen[0] = '\0';
	for (int round = 0; round < 1000; round++) {
		struct pollfd p[2] = { { .fd = wsgate_req_fd(r),
					 .events = (short)wsgate_req_events(r) },
				       { .fd = sfd >= 0 ? sfd : lfd, .events = POLLIN } };

		if ((rc = wsgate_req_step(r)) != WSGATE_AGAIN)
			break;
		p[0].fd = wsgate_req_fd(r);
		p[0].events = (short)wsgate_req_events(r);
		poll(p, lfd >= 0 ? 2 : 1, 1000);
		if (lfd < 0 || !(p[1].revents & POLLIN))
			continue;
		if (sfd < 0) {
			sfd = accept(lfd, NULL, NULL);
			continue;
		}
		if (!answered) {
			ssize_t n = recv(sfd, seen + got, seen_len - 1 - got, 0);

			if (n > 0)
				got += (size_t)n;
			seen[got] = '\0';
			if (strstr(seen, "\r\n\r\n")) {
				CHECK(send(sfd, answer, strlen(answer), 0) == (ssize_t)strlen(answer));
				close(sfd);
				sfd = -1;
				answered = 1;
				lfd = -1;
			}
		}
	}
	if (sfd >= 0)
		close(sfd);
	return rc;
}

static void test_nonblocking(void)
{
	int port, lfd = listener(&port), rc;
	char url[64], seen[4096];
	wsgate_client_t *c;
	wsgate_req_t *r;
	const wsgate_response_t *res;
	wsgate_call_t get = { .op = WSGATE_GET, .target = CONN_ID };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/dev", port);
	c = client(url);
	CHECK_INT_EQ(wsgate_req_start(c, &get, &r), WSGATE_OK);
	CHECK(wsgate_req_fd(r) >= 0);
	CHECK(wsgate_req_events(r) & POLLOUT);
	rc = drive(r, lfd, "HTTP/1.1 410 Gone\r\nx-amzn-RequestId: req-1\r\n"
		   "x-amzn-ErrorType: GoneException:http://internal/\r\nContent-Length: 0\r\n\r\n",
		   seen, sizeof(seen));
	CHECK_INT_EQ(rc, WSGATE_OK);
	CHECK_CONTAINS(seen, "GET /dev/@connections/" CONN_ID " HTTP/1.1\r\n");
	res = wsgate_req_response(r);
	CHECK_INT_EQ(res->status, 410);
	CHECK_STR_EQ(res->error_type ? res->error_type : "", "GoneException");
	CHECK_STR_EQ(res->request_id ? res->request_id : "", "req-1");
	CHECK(res->message == NULL);
	CHECK_INT_EQ(res->body_len, 0);
	wsgate_req_destroy(r);

	CHECK_INT_EQ(wsgate_req_start(c, &get, &r), WSGATE_OK);
	rc = drive(r, lfd, "HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: ForbiddenException\r\n"
		   "Content-Type: application/json\r\n\r\n{\"message\":\"Forbidden\"}",
		   seen, sizeof(seen));
	CHECK_INT_EQ(rc, WSGATE_OK);
	res = wsgate_req_response(r);
	CHECK_INT_EQ(res->status, 403);
	CHECK_STR_EQ(res->message ? res->message : "", "Forbidden");
	CHECK_STR_EQ(res->body, "{\"message\":\"Forbidden\"}");
	wsgate_req_destroy(r);

	CHECK_INT_EQ(wsgate_req_start(c, &get, &r), WSGATE_OK);
	rc = drive(r, lfd, "SSH-2.0-OpenSSH\r\n\r\n", seen, sizeof(seen));
	CHECK_INT_EQ(rc, WSGATE_ERR_PROTOCOL);
	CHECK(wsgate_req_response(r)->error[0] != '\0');
	wsgate_req_destroy(r);

	/* Closed before an answer. */
	CHECK_INT_EQ(wsgate_req_start(c, &get, &r), WSGATE_OK);
	rc = drive(r, lfd, "", seen, sizeof(seen));
	CHECK_INT_EQ(rc, WSGATE_ERR_IO);
	wsgate_req_destroy(r);
	close(lfd);
	wsgate_client_destroy(c);

	/* Nobody listens now: refused, by the synchronous call too. */
	c = client(url);
	{
		wsgate_response_t sres;

		CHECK_INT_EQ(wsgate_get(c, CONN_ID, &sres), WSGATE_ERR_CONNECT);
		CHECK_CONTAINS(sres.error, "Could not connect to the endpoint URL");
		CHECK_INT_EQ(sres.status, 0);
		wsgate_response_dispose(&sres);
	}
	wsgate_client_destroy(c);
}

/* The synchronous call's deadline: a listener that never answers. */
static void test_timeout(void)
{
	int port, lfd = listener(&port);
	char url[64];
	wsgate_client_t *c;
	wsgate_response_t res;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	c = client(url);
	wsgate_client_set_timeout(c, 200);
	CHECK_INT_EQ(wsgate_delete(c, CONN_ID, &res), WSGATE_ERR_TIMEOUT);
	CHECK_CONTAINS(res.error, "200 ms");
	wsgate_response_dispose(&res);
	wsgate_client_destroy(c);
	close(lfd);
	CHECK_STR_EQ(wsgate_strerror(WSGATE_ERR_CONNECT), "could not connect");
}

int main(void)
{
	RUN(test_endpoints);
	RUN(test_request_bytes);
	RUN(test_signature_vectors);
	RUN(test_verifier_accepts);
	RUN(test_nonblocking);
	RUN(test_timeout);
	UNIT_MAIN_END();
}
