/* Route selection: expression compiler and a streaming JSON path scanner.
 *
 * libwebsockets' LEJP was the first candidate, but it caps nesting at 12
 * levels, paths at 128 bytes and cannot tell the key "a.b" from a nested
 * a -> b, so a perfectly valid message could not be routed. This scanner
 * has none of those limits (nesting up to 1000), validates what it reads,
 * skips unrelated values with a tight loop and returns as soon as the
 * selected value is read: a key near the start of a 128 KB message costs
 * the same as in a 100-byte one. */
#include "select.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 1000

enum step_kind { STEP_KEY, STEP_INDEX };

typedef struct step {
	enum step_kind kind;
	char *key;
	size_t key_len;
	uint32_t index;
} step_t;

typedef struct part {
	int is_var;
	char *text; /* literal */
	size_t text_len;
	step_t *steps; /* variable: path below request.body */
	size_t n_steps;
} part_t;

struct gw_rse {
	part_t *parts;
	size_t n_parts;
};

/* ---------------------------------------------------------------------
 * Compiler
 */

struct comp {
	const char *s;
	size_t i, n;
	char *err;
	size_t errlen;
	gw_rse_t *rse;
};

static int fail(struct comp *c, const char *what)
{
	snprintf(c->err, c->errlen, "at character %zu: %s", c->i + 1, what);
	return -1;
}

static part_t *new_part(gw_rse_t *r)
{
	part_t *p;

	r->parts = realloc(r->parts, (r->n_parts + 1) * sizeof(*r->parts));
	if (!r->parts)
		abort();
	p = &r->parts[r->n_parts++];
	memset(p, 0, sizeof(*p));
	return p;
}

static void literal(struct comp *c, const char *s, size_t n)
{
	part_t *p = c->rse->n_parts ? &c->rse->parts[c->rse->n_parts - 1] : NULL;

	if (!p || p->is_var) {
		p = new_part(c->rse);
		p->text = malloc(1);
	}
	p->text = realloc(p->text, p->text_len + n + 1);
	if (!p->text)
		abort();
	memcpy(p->text + p->text_len, s, n);
	p->text_len += n;
	p->text[p->text_len] = '\0';
}

static void add_step(part_t *p, step_t st)
{
	p->steps = realloc(p->steps, (p->n_steps + 1) * sizeof(*p->steps));
	if (!p->steps)
		abort();
	p->steps[p->n_steps++] = st;
}

static int name_char(char ch, int braced)
{
	if (braced)
		return ch != '.' && ch != '[' && ch != ']' && ch != '}' && ch != '\0';
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '$' ||
	       (unsigned char)ch >= 0x80;
}

/* Parses the steps of a path at c->i: ".name", "[N]", "['key']". Stops at
 * '}' (braced) or at the first character that cannot continue the path. */
static int parse_steps(struct comp *c, part_t *p, int braced, int leading_dot_optional)
{
	int first = 1;

	while (c->i < c->n) {
		char ch = c->s[c->i];

		if (ch == '.' || (first && leading_dot_optional && name_char(ch, braced) && ch != '[')) {
			size_t start;
			step_t st = { STEP_KEY, NULL, 0, 0 };

			if (ch == '.')
				c->i++;
			start = c->i;
			while (c->i < c->n && name_char(c->s[c->i], braced))
				c->i++;
			if (c->i == start)
				return fail(c, "expected a key name after '.'");
			st.key_len = c->i - start;
			st.key = malloc(st.key_len + 1);
			if (!st.key)
				abort();
			memcpy(st.key, c->s + start, st.key_len);
			st.key[st.key_len] = '\0';
			add_step(p, st);
		} else if (ch == '[') {
			step_t st = { STEP_INDEX, NULL, 0, 0 };

			c->i++;
			if (c->i < c->n && (c->s[c->i] == '\'' || c->s[c->i] == '"')) {
				size_t qpos = c->i;
				char q = c->s[c->i++];
				gw_buf_t k;

				gw_buf_init(&k);
				while (c->i < c->n && c->s[c->i] != q) {
					if (c->s[c->i] == '\\' && c->i + 1 < c->n)
						c->i++;
					gw_buf_append_char(&k, c->s[c->i++]);
				}
				if (c->i >= c->n) {
					gw_buf_dispose(&k);
					c->i = qpos;
					return fail(c, "unterminated quoted key");
				}
				c->i++;
				st.kind = STEP_KEY;
				st.key_len = k.len;
				st.key = k.data ? k.data : calloc(1, 1);
			} else {
				uint64_t v = 0;
				size_t start = c->i;

				while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
					v = v * 10 + (uint64_t)(c->s[c->i++] - '0');
					if (v > UINT32_MAX)
						return fail(c, "array index too large");
				}
				if (c->i == start)
					return fail(c, "expected an array index or a quoted key after '['");
				st.index = (uint32_t)v;
			}
			if (c->i >= c->n || c->s[c->i] != ']') {
				if (st.key)
					free(st.key);
				return fail(c, "expected ']'");
			}
			c->i++;
			add_step(p, st);
		} else {
			break;
		}
		first = 0;
	}
	return 0;
}

static const char ROOT[] = "request.body";

/* A variable at c->i (just after '$' or "${"). */
static int parse_var(struct comp *c, int braced)
{
	part_t *p;

	if (c->n - c->i < sizeof(ROOT) - 1 || memcmp(c->s + c->i, ROOT, sizeof(ROOT) - 1))
		return fail(c, "expected request.body (route selection reads the message body)");
	c->i += sizeof(ROOT) - 1;
	p = new_part(c->rse);
	p->is_var = 1;
	if (c->i < c->n && c->s[c->i] != '.' && c->s[c->i] != '[' &&
	    !(braced && c->s[c->i] == '}') && name_char(c->s[c->i], 0))
		return fail(c, "expected '.', '[' or the end of the variable");
	if (parse_steps(c, p, braced, 0))
		return -1;
	if (braced) {
		if (c->i >= c->n || c->s[c->i] != '}')
			return fail(c, "expected '}'");
		c->i++;
	}
	return 0;
}

static void steps_free(step_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].key);
	free(s);
}

void gw_rse_free(gw_rse_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_parts; i++) {
		free(r->parts[i].text);
		steps_free(r->parts[i].steps, r->parts[i].n_steps);
	}
	free(r->parts);
	free(r);
}

gw_rse_t *gw_rse_compile(const char *expr, char *err, size_t errlen)
{
	struct comp c = { expr, 0, strlen(expr), err, errlen, calloc(1, sizeof(gw_rse_t)) };

	if (!c.rse)
		abort();
	while (c.i < c.n) {
		char ch = expr[c.i];

		if (ch == '\\' && c.i + 1 < c.n && expr[c.i + 1] == '$') {
			literal(&c, "$", 1);
			c.i += 2;
		} else if (ch == '$' && c.i + 1 < c.n && expr[c.i + 1] == '{') {
			c.i += 2;
			if (parse_var(&c, 1))
				goto fail;
		} else if (ch == '$') {
			c.i++;
			if (parse_var(&c, 0))
				goto fail;
		} else {
			literal(&c, expr + c.i, 1);
			c.i++;
		}
	}
	return c.rse;
fail:
	gw_rse_free(c.rse);
	return NULL;
}

gw_rse_t *gw_rse_compile_path(const char *path, char *err, size_t errlen)
{
	struct comp c = { path, 0, strlen(path), err, errlen, calloc(1, sizeof(gw_rse_t)) };
	part_t *p;

	if (!c.rse)
		abort();
	p = new_part(c.rse);
	p->is_var = 1;
	if (parse_steps(&c, p, 1, 1))
		goto fail;
	if (c.i != c.n) {
		fail(&c, "unexpected character in path");
		goto fail;
	}
	return c.rse;
fail:
	gw_rse_free(c.rse);
	return NULL;
}

int gw_rse_is_static(const gw_rse_t *r)
{
	for (size_t i = 0; i < r->n_parts; i++)
		if (r->parts[i].is_var)
			return 0;
	return 1;
}

/* ---------------------------------------------------------------------
 * Scanner
 */

typedef struct scan {
	const char *p, *end;
} scan_t;

enum { FOUND = 0, MISSING = 1, BAD = -1 };

static inline void ws(scan_t *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = p[i];
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void put_utf8(gw_buf_t *b, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	gw_buf_append(b, u, n);
}

/* A string at s->p (on the opening quote). With out, its unescaped text is
 * appended; raw, the JSON text is appended as is. */
static int string(scan_t *s, gw_buf_t *out, gw_buf_t *raw)
{
	const char *start = s->p;

	s->p++;
	for (;;) {
		const char *q = s->p;

		/* Fast path over ordinary bytes. */
		while (q < s->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
			q++;
		if (out && q > s->p)
			gw_buf_append(out, s->p, (size_t)(q - s->p));
		s->p = q;
		if (s->p >= s->end || (unsigned char)*s->p < 0x20)
			return BAD;
		if (*s->p == '"') {
			s->p++;
			if (raw)
				gw_buf_append(raw, start, (size_t)(s->p - start));
			return FOUND;
		}
		/* escape */
		if (s->p + 1 >= s->end)
			return BAD;
		switch (s->p[1]) {
		case '"': case '\\': case '/':
			if (out)
				gw_buf_append_char(out, s->p[1]);
			s->p += 2;
			break;
		case 'b': if (out) gw_buf_append_char(out, '\b'); s->p += 2; break;
		case 'f': if (out) gw_buf_append_char(out, '\f'); s->p += 2; break;
		case 'n': if (out) gw_buf_append_char(out, '\n'); s->p += 2; break;
		case 'r': if (out) gw_buf_append_char(out, '\r'); s->p += 2; break;
		case 't': if (out) gw_buf_append_char(out, '\t'); s->p += 2; break;
		case 'u': {
			unsigned cp, lo;

			if (s->end - s->p < 6 || hex4(s->p + 2, &cp))
				return BAD;
			s->p += 6;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
				    hex4(s->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
					return BAD;
				s->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				return BAD;
			}
			if (out)
				put_utf8(out, cp);
			break;
		}
		default:
			return BAD;
		}
	}
}

static int number(scan_t *s, gw_buf_t *out)
{
	const char *start = s->p;

	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p >= s->end)
		return BAD;
	if (*s->p == '0') {
		s->p++;
	} else if (*s->p >= '1' && *s->p <= '9') {
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	} else {
		return BAD;
	}
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return BAD;
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return BAD;
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (out)
		gw_buf_append(out, start, (size_t)(s->p - start));
	return FOUND;
}

static int word(scan_t *s, const char *w, size_t n, gw_buf_t *out)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n))
		return BAD;
	s->p += n;
	if (out)
		gw_buf_append(out, w, n);
	return FOUND;
}

/* Skips (validating) one value; with out, appends its compact JSON. */
static int value(scan_t *s, gw_buf_t *out, int depth)
{
	ws(s);
	if (s->p >= s->end)
		return BAD;
	switch (*s->p) {
	case '"':
		return string(s, NULL, out);
	case '{':
	case '[': {
		char close = *s->p == '{' ? '}' : ']';
		int obj = close == '}', first = 1;

		if (depth >= MAX_DEPTH)
			return BAD;
		if (out)
			gw_buf_append_char(out, *s->p);
		s->p++;
		for (;;) {
			ws(s);
			if (s->p >= s->end)
				return BAD;
			if (*s->p == close) {
				s->p++;
				if (out)
					gw_buf_append_char(out, close);
				return FOUND;
			}
			if (!first) {
				if (*s->p != ',')
					return BAD;
				s->p++;
				if (out)
					gw_buf_append_char(out, ',');
				ws(s);
			}
			first = 0;
			if (obj) {
				if (s->p >= s->end || *s->p != '"' || string(s, NULL, out))
					return BAD;
				ws(s);
				if (s->p >= s->end || *s->p != ':')
					return BAD;
				s->p++;
				if (out)
					gw_buf_append_char(out, ':');
			}
			if (value(s, out, depth + 1))
				return BAD;
		}
	}
	case 't': return word(s, "true", 4, out);
	case 'f': return word(s, "false", 5, out);
	case 'n': return word(s, "null", 4, out);
	default: return number(s, out);
	}
}

/* Captures the value at s->p as route-selection text. Scanning stops
 * here, but the value must at least be properly ended ("01" is not 0). */
static int capture(scan_t *s, gw_buf_t *out)
{
	int rc;

	ws(s);
	if (s->p < s->end && *s->p == '"')
		rc = string(s, out, NULL);
	else
		rc = value(s, out, 0);
	if (rc)
		return rc;
	ws(s);
	if (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']')
		return BAD;
	return FOUND;
}

/* Compares the JSON string at s->p with key; advances past it. Returns 1
 * on a match, 0 otherwise, BAD if malformed. Escape-free keys, the common
 * case, are compared in place. */
static int key_matches(scan_t *s, const step_t *st, gw_buf_t *tmp)
{
	const char *q = s->p + 1;

	while (q < s->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
		q++;
	if (q < s->end && *q == '"') {
		size_t n = (size_t)(q - s->p - 1);
		int eq = n == st->key_len && !memcmp(s->p + 1, st->key, n);
		s->p = q + 1;
		return eq;
	}
	gw_buf_reset(tmp);
	if (string(s, tmp, NULL))
		return BAD;
	return tmp->len == st->key_len && !memcmp(tmp->data, st->key, tmp->len);
}

static int find(scan_t *s, const step_t *st, size_t n, gw_buf_t *out, gw_buf_t *tmp,
		int depth)
{
	int first = 1;
	uint32_t idx = 0;

	if (!n)
		return capture(s, out);
	if (depth >= MAX_DEPTH)
		return BAD;
	ws(s);
	if (s->p >= s->end)
		return BAD;
	if ((st->kind == STEP_KEY && *s->p != '{') || (st->kind == STEP_INDEX && *s->p != '[')) {
		/* The path goes through something else: missing, if valid. */
		return value(s, NULL, depth) ? BAD : MISSING;
	}
	s->p++;
	for (;;) {
		int rc;

		ws(s);
		if (s->p >= s->end)
			return BAD;
		if (*s->p == (st->kind == STEP_KEY ? '}' : ']')) {
			s->p++;
			return MISSING;
		}
		if (!first) {
			if (*s->p != ',')
				return BAD;
			s->p++;
			ws(s);
		}
		first = 0;
		if (st->kind == STEP_KEY) {
			if (s->p >= s->end || *s->p != '"')
				return BAD;
			rc = key_matches(s, st, tmp);
			if (rc < 0)
				return BAD;
			ws(s);
			if (s->p >= s->end || *s->p != ':')
				return BAD;
			s->p++;
			if (rc == 1)
				return find(s, st + 1, n - 1, out, tmp, depth + 1);
		} else if (idx++ == st->index) {
			return find(s, st + 1, n - 1, out, tmp, depth + 1);
		}
		if (value(s, NULL, depth + 1))
			return BAD;
	}
}

int gw_rse_eval(const gw_rse_t *r, const char *msg, size_t len, gw_buf_t *out)
{
	gw_buf_t tmp;
	int rc = 0;

	gw_buf_reset(out);
	gw_buf_reserve(out, 32);
	out->data[0] = '\0';
	gw_buf_init(&tmp);
	for (size_t i = 0; i < r->n_parts; i++) {
		const part_t *p = &r->parts[i];
		scan_t s = { msg, msg + len };
		size_t mark = out->len;
		int found;

		if (!p->is_var) {
			gw_buf_append(out, p->text, p->text_len);
			continue;
		}
		found = find(&s, p->steps, p->n_steps, out, &tmp, 0);
		if (found == BAD) {
			rc = -1;
			break;
		}
		if (found == MISSING)
			out->len = mark; /* a missing path is "" */
		/* Selected text must be valid UTF-8 to name a route. */
		if (!gw_utf8_valid((const unsigned char *)out->data + mark, out->len - mark)) {
			rc = -1;
			break;
		}
	}
	if (out->data)
		out->data[out->len] = '\0';
	gw_buf_dispose(&tmp);
	return rc;
}
