/* wsgate: command line. Everything else lives in the core library. */
#include "cluster.h"
#include "config.h"
#include "gateway.h"
#include "iplimit.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "buf.h"
#include "event.h"
#include "template.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wsgate [options]\n"
		"  --routes PATH        API file, or folder of *.json API files (default routes/)\n"
		"  --listen HOST:PORT   WebSocket and HTTP listener (default 0.0.0.0:8080)\n"
		"  --mgmt-listen HOST:PORT  management API listener (default 127.0.0.1:8081)\n"
		"  --mgmt-insecure      let an unauthenticated management API (no\n"
		"                       managementAuth in the API files) listen beyond loopback\n"
		"  --mgmt-on-gateway    also serve /{stage}/@connections on the gateway listener\n"
		"                       (as AWS's execute-api host); on anyway with managementAuth\n"
		"  --data DIR           connection registry folder (default ./data)\n"
		"  --log-level LEVEL    error, warn, info or debug (default info)\n"
		"  --log-format FORMAT  text (default) or json: one JSON object per log line\n"
		"  --metrics-no-auth    GET /metrics without SigV4 even with managementAuth\n"
		"                       (for a Prometheus that cannot sign)\n"
		"  --workers N          event loops sharing the listeners (default: one per core)\n"
		"  --tls-cert FILE      PEM certificate chain: serve wss:// and https://;\n"
		"                       repeat with --tls-key for more certificates, chosen\n"
		"                       by SNI (the first: clients without SNI or unknown names)\n"
		"  --tls-key FILE       PEM private key of the --tls-cert before it\n"
		"  --tls DIR            the same from a folder: NAME.crt + NAME.key or NAME.pem\n"
		"                       pairs (the default: NAME \"default\", else the first)\n"
		"  --send-timeout SECONDS  how long a close may wait for a client that\n"
		"                       does not read before its socket is reset (default 10)\n"
		"  --max-pending-heads N  connections still sending their request head,\n"
		"                       at most (default 16384; 0: no bound)\n"
		"  --max-pending-heads-per-ip N  the same per source address (IPv6: per /64;\n"
		"                       default 256; 0: no bound)\n"
		"  --drain-seconds N    on SIGTERM, wait up to N s for closes and $disconnect\n"
		"                       calls (default 10); the calls left are sent by the\n"
		"                       next start\n"
		"  --disconnect-retry-seconds N  retry a $disconnect the backend did not\n"
		"                       answer for N s after the close (default 300)\n"
		"  --disconnect-rate N  $disconnect calls of an earlier run sent per second\n"
		"                       (default 200)\n"
		"  --nats URL           join a cluster over NATS (nats://HOST:PORT, comma-\n"
		"                       separated for several servers): the management API\n"
		"                       of any node serves every node's connections\n"
		"  --cluster-secret-file FILE  the connection ID secret, the same file on\n"
		"                       every node (16 to 4096 bytes); required with --nats\n"
		"  --node-id N          this node's ID, 1 to 255 (default: a free one, printed)\n"
		"  --cluster-name NAME  NATS subject prefix part (default \"default\")\n"
		"  --cluster-timeout MS how long an operation forwarded to another node may\n"
		"                       take before it is answered 410 (default 2000)\n"
		"  --nats-creds FILE    NATS user credentials (JWT and NKey seed)\n"
		"  --nats-ca FILE       CA certificates for NATS over TLS\n"
		"  --nats-cert FILE     client certificate for NATS (with --nats-key)\n"
		"  --nats-key FILE      its private key\n"
		"  --runner-url URL     a template's Lambda integrations call URL followed by\n"
		"                       the function's logical ID (default\n"
		"                       " GW_TMPL_DEFAULT_RUNNER ")\n"
		"  --check              validate the configuration and exit (0 when valid)\n"
		"  --connections        print the registry of --data (one JSON line per\n"
		"                       connection, also while a gateway runs) and exit\n"
		"  --reload             ask the gateway running on --data to read its API\n"
		"                       files again (as SIGHUP does) and exit\n"
		"  --version            print the version and exit\n"
		"  --help               print this help and exit\n"
		"Port 0 binds an ephemeral port; the ports bound are printed on start.\n"
		"--routes also takes a SAM/CloudFormation template (*.yaml, *.yml, *.template).\n"
		"\n"
		"usage: wsgate import [--functions] [--api ID] [--runner-url URL]\n"
		"                     [--region REGION] TEMPLATE\n"
		"  prints the API file of the template's AWS::ApiGatewayV2 API (--functions:\n"
		"  its Lambda functions, for clients/lambda-runner); warnings on stderr\n"
		"usage: wsgate run TEMPLATE [options]\n"
		"  the gateway on TEMPLATE (with options) and its Node.js Lambda functions\n"
		"  served by clients/lambda-runner on 127.0.0.1:9000 (needs node)\n");
}

/* "HOST:PORT", "[v6]:PORT" or ":PORT". */
static int parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long p;

	if (!colon)
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 0 || p > 65535)
		return -1;
	if (s[0] == '[' && colon > s && colon[-1] == ']')
		snprintf(host, hostlen, "%.*s", (int)(colon - s - 2), s + 1);
	else if (colon == s)
		snprintf(host, hostlen, "0.0.0.0");
	else
		snprintf(host, hostlen, "%.*s", (int)(colon - s), s);
	*port = (int)p;
	return 0;
}

/* The first error writing the listing (EPIPE: its reader left). */
static int write_errno;

static void print_record(const gw_conn_record_t *r, void *user)
{
	gw_buf_t *b = user;
	char t[64];

	if (write_errno)
		return; /* the reader left: the rest would go nowhere */
	gw_buf_reset(b);
	gw_buf_append_str(b, "{\"id\":");
	gw_buf_append_json_str(b, r->id, strlen(r->id));
	gw_buf_append_str(b, ",\"api\":");
	gw_buf_append_json_str(b, r->api, strlen(r->api));
	gw_buf_append_str(b, ",\"stage\":");
	gw_buf_append_json_str(b, r->stage, strlen(r->stage));
	gw_buf_append_str(b, ",\"sourceIp\":");
	gw_buf_append_json_str(b, r->source_ip, strlen(r->source_ip));
	gw_buf_append_str(b, ",\"userAgent\":");
	gw_buf_append_json_str(b, r->user_agent, strlen(r->user_agent));
	gw_event_iso_time(t, r->connected_at);
	gw_buf_append_str(b, ",\"connectedAt\":\"");
	gw_buf_append_str(b, t);
	gw_event_iso_time(t, r->last_active_at);
	gw_buf_append_str(b, "\",\"lastActiveAt\":\"");
	gw_buf_append_str(b, t);
	gw_buf_append_str(b, "\",\"loop\":");
	gw_buf_append_u64(b, r->worker);
	gw_buf_append_str(b, "}\n");
	if (fwrite(b->data, 1, b->len, stdout) != b->len)
		write_errno = errno;
}

/* 127.0.0.0/8, ::1 or localhost. */
static int is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!strcmp(host, "localhost"))
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Without managementAuth, whoever reaches the management listener can post
 * to, read and close every connection: loopback only, unless told. */
static int check_mgmt_exposure(const gw_config_t *cfg, const char *host, int insecure)
{
	if (gw_config_mgmt_auth(cfg)) {
		fprintf(stderr, "wsgate: the management API requires SigV4 signatures "
			"(managementAuth)\n");
		return 0;
	}
	if (is_loopback(host)) {
		fprintf(stderr, "wsgate: the management API is not authenticated (no "
			"managementAuth in the API files): loopback only\n");
		return 0;
	}
	if (insecure) {
		fprintf(stderr, "wsgate: WARNING: the management API on %s is not "
			"authenticated (--mgmt-insecure): anyone who reaches it can post to, "
			"read and close every connection\n", host);
		return 0;
	}
	fprintf(stderr, "wsgate: --mgmt-listen %s: refusing to serve an unauthenticated "
		"management API beyond loopback; add managementAuth to the API files, "
		"listen on 127.0.0.1, or pass --mgmt-insecure\n", host);
	return -1;
}

/* The registry read through its public API, like LMDB's mdb_stat. */
static int list_connections(const char *dir)
{
	gw_registry_t *reg;
	char err[512];
	gw_buf_t b;
	int rc;

	if (gw_registry_open_readonly(dir, &reg, err, sizeof(err))) {
		fprintf(stderr, "wsgate: %s\n", err);
		return 1;
	}
	/* `wsgate --connections | head -1`: a reader that leaves early is an
	 * EPIPE to stop at, not a signal to die of. */
	signal(SIGPIPE, SIG_IGN);
	gw_buf_init(&b);
	rc = gw_registry_foreach(reg, print_record, &b);
	gw_buf_dispose(&b);
	gw_registry_close(reg);
	if (fflush(stdout) && !write_errno)
		write_errno = errno;
	if (write_errno) {
		if (write_errno == EPIPE)
			return 0;
		fprintf(stderr, "wsgate: --connections: cannot write: %s\n",
			strerror(write_errno));
		return 1;
	}
	if (rc) {
		fprintf(stderr, "wsgate: %s: cannot read the registry\n", dir);
		return 1;
	}
	return 0;
}

/* The gateway holding DIR/wsgate.lock wrote its pid there (registry.c):
 * SIGHUP it. A lock nobody holds means no gateway runs on DIR. */
static int signal_reload(const char *dir)
{
	char path[4096], buf[32];
	long pid;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/wsgate.lock", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fprintf(stderr, "wsgate: --reload: no gateway runs on %s (%s: %s)\n", dir, path,
			strerror(errno));
		return 1;
	}
	if (!flock(fd, LOCK_SH | LOCK_NB)) {
		close(fd);
		fprintf(stderr, "wsgate: --reload: no gateway runs on %s (%s is not locked)\n",
			dir, path);
		return 1;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 1 || kill((pid_t)pid, SIGHUP)) {
		fprintf(stderr, "wsgate: --reload: cannot signal the gateway (pid \"%.*s\"): %s\n",
			(int)strcspn(buf, "\n"), buf, pid <= 1 ? "not a pid" : strerror(errno));
		return 1;
	}
	printf("wsgate: asked the gateway (pid %ld) to reload; its log tells the outcome\n",
	       pid);
	return 0;
}

#define MAX_TLS_PAIRS 64

/* --tls-cert/--tls-key come in pairs, --tls DIR instead of them. */
static int check_tls_opts(gw_tls_files_t *tls, const char **certs, const char **keys,
			  size_t n_certs, size_t n_keys)
{
	if (n_certs != n_keys) {
		fprintf(stderr, "wsgate: --tls-cert %s: no --tls-key after it (pairs: "
			"--tls-cert FILE --tls-key FILE, repeated)\n", certs[n_keys]);
		return -1;
	}
	if (tls->dir && n_certs) {
		fprintf(stderr, "wsgate: --tls DIR and --tls-cert/--tls-key are alternatives "
			"(expected one of them)\n");
		return -1;
	}
	tls->certs = certs;
	tls->keys = keys;
	tls->n = n_certs;
	return 0;
}

/* --check reads the certificates too. */
static int check_tls_files(const gw_tls_files_t *tls)
{
	char err[1024];
	SSL_CTX *ctx;

	if (!tls->dir && !tls->n)
		return 0;
	ctx = gw_tlscert_create(tls, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "wsgate: TLS: %s\n", err);
		return -1;
	}
	gw_tlscert_destroy(ctx);
	return 0;
}

/* The cluster options need --nats, and --nats needs the shared secret,
 * which becomes the ID key here, before anything draws one. */
static int check_cluster_opts(const gw_cluster_opts_t *co)
{
	char err[512];

	if (!co->url) {
		if (co->secret_file || co->node_id || co->timeout_ms || co->creds || co->ca ||
		    co->cert || co->key || strcmp(co->name, "default")) {
			fprintf(stderr, "wsgate: the cluster options (--node-id, "
				"--cluster-secret-file...) need --nats URL\n");
			return -1;
		}
		return 0;
	}
	if (!co->secret_file) {
		fprintf(stderr, "wsgate: --nats needs --cluster-secret-file FILE: every node "
			"must verify every node's connection IDs\n");
		return -1;
	}
	if (!co->cert != !co->key) {
		fprintf(stderr, "wsgate: --nats-cert and --nats-key go together\n");
		return -1;
	}
	if (gw_cluster_load_secret(co->secret_file, err, sizeof(err))) {
		fprintf(stderr, "wsgate: %s\n", err);
		return -1;
	}
	return 0;
}

/* wsgate import: a template's API file, or its functions, on stdout. */
static int import_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "functions", no_argument, NULL, 'f' },
		{ "api", required_argument, NULL, 'a' },
		{ "runner-url", required_argument, NULL, 'u' },
		{ "region", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	gw_tmpl_opts_t o = { 0 };
	gw_buf_t warn, err;
	int c, functions = 0, rc = 1;
	char *data = NULL, *out;
	size_t len = 0;
	json_t *v = NULL;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f': functions = 1; break;
		case 'a': o.api = optarg; break;
		case 'u': o.runner_url = optarg; break;
		case 'g': o.region = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "wsgate import: expected one template file\n");
		return 2;
	}
	gw_buf_init(&warn);
	gw_buf_init(&err);
	if (gw_tmpl_read_file(argv[optind], &data, &len, &err))
		goto done;
	v = functions ? gw_tmpl_functions(data, len, &o, &warn, &err)
		      : gw_tmpl_to_api(data, len, &o, &warn, &err);
	if (warn.len)
		fprintf(stderr, "%.*s", (int)warn.len, warn.data);
	if (!v)
		goto done;
	out = json_dumps(v, JSON_INDENT(2));
	if (out && printf("%s\n", out) > 0 && !fflush(stdout))
		rc = 0;
	free(out);
done:
	if (rc && err.len)
		fprintf(stderr, "wsgate import: %s: %.*s", argv[optind], (int)err.len, err.data);
	json_decref(v);
	free(data);
	gw_buf_dispose(&warn);
	gw_buf_dispose(&err);
	return rc;
}

/* wsgate run TEMPLATE [OPTIONS]: the gateway on a template with its
 * Lambda functions served by clients/lambda-runner (Node.js), which
 * starts this binary with OPTIONS. The runner is found beside the build
 * (../clients/lambda-runner from the binary's folder) or named by
 * WSGATE_LAMBDA_RUNNER. */
static int run_main(int argc, char **argv)
{
	char self[4096], runner[4200], *slash;
	const char *env = getenv("WSGATE_LAMBDA_RUNNER");
	const char **args;
	ssize_t n;
	int i = 0;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: wsgate run TEMPLATE [wsgate options]\n");
		return 2;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "wsgate run: cannot find this binary: %s\n", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	if (env)
		snprintf(runner, sizeof(runner), "%s", env);
	else {
		slash = strrchr(self, '/');
		snprintf(runner, sizeof(runner), "%.*s/../clients/lambda-runner/runner.mjs",
			 (int)(slash - self), self);
	}
	if (access(runner, R_OK)) {
		fprintf(stderr, "wsgate run: %s: %s (set WSGATE_LAMBDA_RUNNER to runner.mjs)\n",
			runner, strerror(errno));
		return 1;
	}
	args = calloc((size_t)argc + 8, sizeof(*args));
	if (!args)
		abort();
	args[i++] = "node";
	args[i++] = runner;
	args[i++] = "--wsgate";
	args[i++] = self;
	args[i++] = "--start-gateway";
	args[i++] = argv[1];
	args[i++] = "--";
	for (int a = 2; a < argc; a++)
		args[i++] = argv[a];
	execvp("node", (char *const *)args);
	fprintf(stderr, "wsgate run: cannot run node: %s\n", strerror(errno));
	free(args);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "routes", required_argument, NULL, 'r' },
		{ "listen", required_argument, NULL, 'l' },
		{ "mgmt-listen", required_argument, NULL, 'm' },
		{ "mgmt-insecure", no_argument, NULL, 'I' },
		{ "mgmt-on-gateway", no_argument, NULL, 1403 },
		{ "data", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-format", required_argument, NULL, 1401 },
		{ "metrics-no-auth", no_argument, NULL, 1402 },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "workers", required_argument, NULL, 'W' },
		{ "connections", no_argument, NULL, 'n' },
		{ "reload", no_argument, NULL, 'R' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "tls", required_argument, NULL, 1003 },
		{ "send-timeout", required_argument, NULL, 'S' },
		{ "max-pending-heads", required_argument, NULL, 1001 },
		{ "max-pending-heads-per-ip", required_argument, NULL, 1002 },
		{ "drain-seconds", required_argument, NULL, 'D' },
		{ "disconnect-retry-seconds", required_argument, NULL, 'Y' },
		{ "disconnect-rate", required_argument, NULL, 'Q' },
		{ "nats", required_argument, NULL, 1101 },
		{ "cluster-secret-file", required_argument, NULL, 1102 },
		{ "node-id", required_argument, NULL, 1103 },
		{ "cluster-name", required_argument, NULL, 1104 },
		{ "cluster-timeout", required_argument, NULL, 1105 },
		{ "nats-creds", required_argument, NULL, 1106 },
		{ "nats-ca", required_argument, NULL, 1107 },
		{ "nats-cert", required_argument, NULL, 1108 },
		{ "nats-key", required_argument, NULL, 1109 },
		{ "runner-url", required_argument, NULL, 1201 },
		{ "check", no_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *routes = "routes/", *listen = "0.0.0.0:8080",
		   *mgmt = "127.0.0.1:8081", *data = "./data";
	char host[256], mhost[256], err[512];
	gw_gateway_opts_t go;
	gw_cluster_opts_t co = { .name = "default" };
	gw_config_t *cfg = NULL;
	gw_gateway_t *gw = NULL;
	gw_buf_t errs;
	int check = 0, list = 0, reload = 0, c, level, mgmt_insecure = 0;
	static const char *tls_certs[MAX_TLS_PAIRS], *tls_keys[MAX_TLS_PAIRS];
	size_t n_certs = 0, n_keys = 0;
	unsigned max_heads = GW_DEFAULT_MAX_PENDING_HEADS,
		 max_heads_ip = GW_DEFAULT_MAX_PENDING_HEADS_PER_IP;

	memset(&go, 0, sizeof(go));
	if (argc > 1 && !strcmp(argv[1], "import"))
		return import_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "run"))
		return run_main(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': routes = optarg; break;
		case 'l': listen = optarg; break;
		case 'm': mgmt = optarg; break;
		case 'I': mgmt_insecure = 1; break;
		case 1403: go.mgmt_on_gateway = 1; break;
		case 'd': data = optarg; break;
		case 'c': check = 1; break;
		case 'n': list = 1; break;
		case 'R': reload = 1; break;
		case 'C':
			if (n_certs == MAX_TLS_PAIRS) {
				fprintf(stderr, "wsgate: --tls-cert: at most %d pairs (expected "
					"--tls DIR for more)\n", MAX_TLS_PAIRS);
				return 2;
			}
			tls_certs[n_certs++] = optarg;
			break;
		case 1003:
			if (go.tls.dir) {
				fprintf(stderr, "wsgate: --tls: given twice (expected one folder)\n");
				return 2;
			}
			go.tls.dir = optarg;
			break;
		case 'W': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 256) {
				fprintf(stderr, "wsgate: --workers: expected a number from 1 to 256\n");
				return 2;
			}
			go.workers = (unsigned)n;
			break;
		}
		case 'K':
			if (n_keys >= n_certs) {
				fprintf(stderr, "wsgate: --tls-key %s: expected after its --tls-cert "
					"(pairs: --tls-cert FILE --tls-key FILE, repeated)\n", optarg);
				return 2;
			}
			tls_keys[n_keys++] = optarg;
			break;
		case 'S': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 1 || n > 3600) {
				fprintf(stderr, "wsgate: --send-timeout: expected a number of "
					"seconds from 1 to 3600\n");
				return 2;
			}
			go.send_timeout_s = (int)n;
			break;
		}
		case 1001:
		case 1002: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 0 || n > 10000000) {
				fprintf(stderr, "wsgate: --max-pending-heads%s: expected a number "
					"from 0 to 10000000\n", c == 1002 ? "-per-ip" : "");
				return 2;
			}
			if (c == 1001)
				max_heads = (unsigned)n;
			else
				max_heads_ip = (unsigned)n;
			break;
		}
		case 'D':
		case 'Y':
		case 'Q': {
			static const struct { int opt; const char *name; long max; } lim[] = {
				{ 'D', "--drain-seconds", 86400 },
				{ 'Y', "--disconnect-retry-seconds", 30 * 86400 },
				{ 'Q', "--disconnect-rate", 1000000 },
			};
			char *end;
			long n = strtol(optarg, &end, 10);
			int i = c == 'D' ? 0 : c == 'Y' ? 1 : 2;

			if (*end || !*optarg || n < 1 || n > lim[i].max) {
				fprintf(stderr, "wsgate: %s: expected a number from 1 to %ld\n",
					lim[i].name, lim[i].max);
				return 2;
			}
			if (c == 'D')
				go.drain_seconds = (int)n;
			else if (c == 'Y')
				go.disconnect_retry_seconds = (unsigned)n;
			else
				go.disconnect_rate = (unsigned)n;
			break;
		}
		case 1201: gw_tmpl_default_opts.runner_url = optarg; break;
		case 1101: co.url = optarg; break;
		case 1102: co.secret_file = optarg; break;
		case 1104: co.name = optarg; break;
		case 1106: co.creds = optarg; break;
		case 1107: co.ca = optarg; break;
		case 1108: co.cert = optarg; break;
		case 1109: co.key = optarg; break;
		case 1103:
		case 1105: {
			char *end;
			long n = strtol(optarg, &end, 10);
			long max = c == 1103 ? 255 : 600000;
			if (*end || end == optarg || n < 1 || n > max) {
				fprintf(stderr, "wsgate: --%s: expected a number from 1 to %ld\n",
					c == 1103 ? "node-id" : "cluster-timeout", max);
				return 2;
			}
			if (c == 1103)
				co.node_id = (int)n;
			else
				co.timeout_ms = (int)n;
			break;
		}
		case 'L':
			level = gw_log_parse_level(optarg);
			if (level < 0) {
				fprintf(stderr, "wsgate: --log-level: expected error, warn, info or debug\n");
				return 2;
			}
			gw_log_threshold = level;
			break;
		case 1402:
			gw_metrics_no_auth = 1;
			break;
		case 1401:
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				fprintf(stderr, "wsgate: --log-format: expected text or json\n");
				return 2;
			}
			gw_log_json = !strcmp(optarg, "json");
			break;
		case 'v': printf("wsgate %s\n", GW_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wsgate: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	gw_log_set_level(gw_log_threshold);
	gw_iplimit_heads_configure(max_heads, max_heads_ip);
	if (list)
		return list_connections(data);
	if (reload)
		return signal_reload(data);
	{
		/* One descriptor per connection: take all the system allows. */
		struct rlimit rl;
		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (check_tls_opts(&go.tls, tls_certs, tls_keys, n_certs, n_keys))
		return 2;
	if (check_cluster_opts(&co))
		return 2;
	if (parse_hostport(listen, host, sizeof(host), &go.listen_port)) {
		fprintf(stderr, "wsgate: --listen: expected HOST:PORT, found \"%s\"\n", listen);
		return 2;
	}
	if (parse_hostport(mgmt, mhost, sizeof(mhost), &go.mgmt_port)) {
		fprintf(stderr, "wsgate: --mgmt-listen: expected HOST:PORT, found \"%s\"\n", mgmt);
		return 2;
	}
	go.listen_host = host;
	go.mgmt_host = mhost;
	go.data_dir = data;
	go.routes = routes;

	gw_buf_init(&errs);
	if (gw_config_load(routes, &cfg, &errs)) {
		fprintf(stderr, "%s", errs.data ? errs.data : "");
		fprintf(stderr, "wsgate: configuration is invalid, not starting\n");
		gw_buf_dispose(&errs);
		return 1;
	}
	gw_buf_dispose(&errs);
	if (check && check_tls_files(&go.tls)) {
		gw_config_free(cfg);
		return 1;
	}
	if (check) {
		printf("wsgate: configuration OK (%zu API%s)\n", cfg->n_apis,
		       cfg->n_apis == 1 ? "" : "s");
		gw_config_free(cfg);
		return 0;
	}
	go.reload_needs_mgmt_auth = !is_loopback(mhost) && !mgmt_insecure;
	if (check_mgmt_exposure(cfg, mhost, mgmt_insecure)) {
		gw_config_free(cfg);
		return 2;
	}
	if (go.mgmt_on_gateway && !gw_config_mgmt_auth(cfg) && !is_loopback(host))
		fprintf(stderr, "wsgate: WARNING: --mgmt-on-gateway without managementAuth: "
			"anyone who reaches %s can post to, read and close every connection "
			"through /{stage}/@connections\n", host);
	if (gw_gateway_create(&gw, cfg, &go, err, sizeof(err))) {
		fprintf(stderr, "wsgate: %s\n", err);
		return 1;
	}
	/* Before the loops run: IDs name this node from the first connection. */
	if (co.url) {
		if (gw_cluster_start(gw, &co, err, sizeof(err))) {
			fprintf(stderr, "wsgate: %s\n", err);
			gw_gateway_destroy(gw);
			return 1;
		}
		fprintf(stderr, "wsgate: cluster \"%s\" node %u over NATS\n", co.name,
			gw_cluster_self());
	}
	fprintf(stderr, "wsgate: listening on %s:%d (gateway)\n", host, gw_gateway_port(gw));
	if (go.tls.dir || go.tls.n)
		fprintf(stderr, "wsgate: the gateway listener speaks TLS (wss://, https://)\n");
	fprintf(stderr, "wsgate: listening on %s:%d (management)\n", mhost,
		gw_gateway_mgmt_port(gw));
	c = gw_gateway_run(gw);
	gw_cluster_stop();
	gw_gateway_destroy(gw);
	return c;
}
