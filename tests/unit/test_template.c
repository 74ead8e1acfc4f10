/* template.c: SAM/CloudFormation templates to API files and to the
 * runner's function list (issue 15). */
#include "unit.h"

#include "config.h"
#include "template.h"

#include <stdlib.h>

static gw_buf_t warn, err;

static json_t *to_api(const char *yaml, const gw_tmpl_opts_t *o)
{
	static const gw_tmpl_opts_t none;

	gw_buf_reset(&warn);
	gw_buf_reset(&err);
	return gw_tmpl_to_api(yaml, strlen(yaml), o ? o : &none, &warn, &err);
}

/* warn/err as C strings (NUL-terminated copies kept until the next call). */
static const char *text(gw_buf_t *b)
{
	gw_buf_append_char(b, '\0');
	b->len--;
	return b->data ? b->data : "";
}

static const char *at(json_t *root, const char *path)
{
	char key[256];
	json_t *v = root;

	for (const char *p = path; v && *p;) {
		size_t n = strcspn(p, "/");
		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		v = json_object_get(v, key);
		p += n + (p[n] == '/');
	}
	return json_string_value(v);
}

/* The output is an API file the gateway accepts. */
static void check_loads(json_t *api)
{
	char *s = json_dumps(api, 0);
	gw_config_t *cfg = NULL;
	gw_buf_t e;

	gw_buf_init(&e);
	CHECK(s != NULL);
	CHECK_MSG(!gw_config_parse_buffer("t.json", s, strlen(s), 0, &cfg, &e),
		  "rejected: %.*s (%s)", (int)e.len, e.data ? e.data : "", s);
	if (cfg)
		gw_config_free(cfg);
	gw_buf_dispose(&e);
	free(s);
}

static const char *const chat =
	"AWSTemplateFormatVersion: '2010-09-09'\n"
	"Transform: AWS::Serverless-2016-10-31\n"
	"Parameters:\n"
	"  StageName: {Type: String, Default: Prod}\n"
	"Resources:\n"
	"  Chat:\n"
	"    Type: AWS::ApiGatewayV2::Api\n"
	"    Properties:\n"
	"      Name: chat\n"
	"      ProtocolType: WEBSOCKET\n"
	"      RouteSelectionExpression: \"$request.body.action\"\n"
	"  ConnectRoute:\n"
	"    Type: AWS::ApiGatewayV2::Route\n"
	"    Properties:\n"
	"      ApiId: !Ref Chat\n"
	"      RouteKey: $connect\n"
	"      AuthorizationType: NONE\n"
	"      Target: !Join ['/', [integrations, !Ref ConnectInteg]]\n"
	"  ConnectInteg:\n"
	"    Type: AWS::ApiGatewayV2::Integration\n"
	"    Properties:\n"
	"      ApiId: !Ref Chat\n"
	"      IntegrationType: AWS_PROXY\n"
	"      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${OnConnect.Arn}/invocations\n"
	"      TimeoutInMillis: 5000\n"
	"  SendRoute:\n"
	"    Type: AWS::ApiGatewayV2::Route\n"
	"    Properties:\n"
	"      ApiId: {Ref: Chat}\n"
	"      RouteKey: sendmessage\n"
	"      Target: {\"Fn::Join\": [\"/\", [integrations, {Ref: SendInteg}]]}\n"
	"  SendResponse:\n"
	"    Type: AWS::ApiGatewayV2::RouteResponse\n"
	"    Properties: {ApiId: !Ref Chat, RouteId: !Ref SendRoute, RouteResponseKey: $default}\n"
	"  SendInteg:\n"
	"    Type: AWS::ApiGatewayV2::Integration\n"
	"    Properties:\n"
	"      ApiId: !Ref Chat\n"
	"      IntegrationType: AWS_PROXY\n"
	"      IntegrationUri: !Join ['', ['arn:aws:apigateway:', !Ref 'AWS::Region', ':lambda:path/2015-03-31/functions/', !GetAtt [Send, Arn], /invocations]]\n"
	"  Stage:\n"
	"    Type: AWS::ApiGatewayV2::Stage\n"
	"    Properties:\n"
	"      ApiId: !Ref Chat\n"
	"      StageName: !Ref StageName\n"
	"      StageVariables: {table: !Sub '${AWS::StackName}-conns', n: 3}\n"
	"      DefaultRouteSettings: {ThrottlingBurstLimit: 50, ThrottlingRateLimit: 100}\n"
	"      AccessLogSettings: {DestinationArn: x}\n"
	"  Table:\n"
	"    Type: AWS::DynamoDB::Table\n"
	"  OnConnect:\n"
	"    Type: AWS::Serverless::Function\n"
	"    Properties: {CodeUri: onconnect/, Handler: app.handler, Runtime: nodejs20.x}\n"
	"  Send:\n"
	"    Type: AWS::Lambda::Function\n"
	"    Properties: {Code: send/, Handler: app.handler, Runtime: nodejs20.x}\n";

static void test_websocket_api(void)
{
	json_t *api = to_api(chat, NULL);

	CHECK_MSG(api != NULL, "%s", text(&err));
	if (!api)
		return;
	CHECK_STR_EQ(at(api, "name"), "chat");
	CHECK_STR_EQ(at(api, "stage"), "Prod");
	CHECK_STR_EQ(at(api, "routeSelectionExpression"), "$request.body.action");
	CHECK_STR_EQ(at(api, "integrations/ConnectInteg/type"), "AWS_PROXY");
	CHECK_STR_EQ(at(api, "integrations/ConnectInteg/uri"),
		     "http://127.0.0.1:9000/functions/OnConnect");
	CHECK_INT_EQ(json_integer_value(json_object_get(
		json_object_get(json_object_get(api, "integrations"), "ConnectInteg"), "timeoutMs")),
		5000);
	CHECK_STR_EQ(at(api, "integrations/SendInteg/uri"), "http://127.0.0.1:9000/functions/Send");
	CHECK_STR_EQ(at(api, "routes/$connect/integration"), "ConnectInteg");
	CHECK_STR_EQ(at(api, "routes/sendmessage/integration"), "SendInteg");
	CHECK(json_is_true(json_object_get(json_object_get(json_object_get(api, "routes"),
							   "sendmessage"), "routeResponse")));
	CHECK_STR_EQ(at(api, "stageVariables/table"), "wsgate-conns");
	CHECK_STR_EQ(at(api, "stageVariables/n"), "3");
	CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(api, "throttling"),
							 "burstLimit")), 50);
	/* Never dropped in silence. */
	CHECK_CONTAINS(text(&warn), "Table (AWS::DynamoDB::Table): not served by the gateway");
	CHECK_CONTAINS(text(&warn), "Stage (AWS::ApiGatewayV2::Stage): property AccessLogSettings");
	check_loads(api);
	json_decref(api);
}

static void test_runner_url_and_region(void)
{
	gw_tmpl_opts_t o = { .runner_url = "http://10.0.0.1:7000/fn/", .region = "eu-west-1" };
	json_t *api = to_api(chat, &o);

	CHECK(api != NULL);
	CHECK_STR_EQ(at(api, "integrations/ConnectInteg/uri"), "http://10.0.0.1:7000/fn/OnConnect");
	json_decref(api);
}

/* The same API written in JSON, long form only. */
static void test_json_template(void)
{
	const char *t =
		"{\"Resources\": {"
		" \"A\": {\"Type\": \"AWS::ApiGatewayV2::Api\", \"Properties\": {\"Name\": \"j\","
		"   \"ProtocolType\": \"WEBSOCKET\", \"RouteSelectionExpression\": \"$request.body.op\"}},"
		" \"I\": {\"Type\": \"AWS::ApiGatewayV2::Integration\", \"Properties\": {"
		"   \"ApiId\": {\"Ref\": \"A\"}, \"IntegrationType\": \"AWS_PROXY\","
		"   \"IntegrationUri\": {\"Fn::Sub\": [\"arn:aws:apigateway:r:lambda:path/2015-03-31/functions/${F}/invocations\","
		"     {\"F\": {\"Fn::GetAtt\": [\"Fn\", \"Arn\"]}}]}}},"
		" \"R\": {\"Type\": \"AWS::ApiGatewayV2::Route\", \"Properties\": {"
		"   \"ApiId\": {\"Ref\": \"A\"}, \"RouteKey\": \"$default\","
		"   \"Target\": {\"Fn::Sub\": \"integrations/${I}\"}}},"
		" \"Fn\": {\"Type\": \"AWS::Lambda::Function\", \"Properties\": {\"FunctionName\": \"my-fn\"}}}}";
	json_t *api = to_api(t, NULL);

	CHECK_MSG(api != NULL, "%s", text(&err));
	CHECK_STR_EQ(at(api, "routeSelectionExpression"), "$request.body.op");
	CHECK_STR_EQ(at(api, "integrations/I/uri"), "http://127.0.0.1:9000/functions/Fn");
	CHECK_STR_EQ(at(api, "routes/$default/integration"), "I");
	check_loads(api);
	json_decref(api);
}

static void test_intrinsics(void)
{
	const char *t =
		"Parameters:\n"
		"  Env: {Type: String, Default: prod}\n"
		"  NoDefault: {Type: String}\n"
		"Mappings:\n"
		"  Hosts: {prod: {url: 'http://127.0.0.1:9100/x'}}\n"
		"Conditions:\n"
		"  IsProd: !Equals [!Ref Env, prod]\n"
		"  NotProd: !Not [!Condition IsProd]\n"
		"Resources:\n"
		"  A:\n"
		"    Type: AWS::ApiGatewayV2::Api\n"
		"    Properties: {Name: !Sub '${!Literal}-${Env}', ProtocolType: WEBSOCKET}\n"
		"  H:\n"
		"    Type: AWS::ApiGatewayV2::Integration\n"
		"    Properties:\n"
		"      ApiId: !Ref A\n"
		"      IntegrationType: HTTP_PROXY\n"
		"      IntegrationMethod: PUT\n"
		"      IntegrationUri: !FindInMap [Hosts, !Ref Env, url]\n"
		"      TimeoutInMillis: !If [NotProd, 100, 2000]\n"
		"      Description: !If [IsProd, !Ref 'AWS::NoValue', x]\n"
		"      RequestParameters: {integration.request.header.X-Part: !Join ['', [\"'\", !Select [1, !Split [',', 'a,b,c']], \"'\"]]}\n"
		"  R:\n"
		"    Type: AWS::ApiGatewayV2::Route\n"
		"    Properties: {ApiId: !Ref A, RouteKey: !Sub '${NoDefault}go', Target: integrations/H}\n"
		"  Odd:\n"
		"    Type: AWS::ApiGatewayV2::Route\n"
		"    Properties: {ApiId: !Ref A, RouteKey: odd, Target: !ImportValue other-stack}\n";
	json_t *api = to_api(t, NULL);

	CHECK_MSG(api != NULL, "%s", text(&err));
	if (!api)
		return;
	CHECK_STR_EQ(at(api, "name"), "${Literal}-prod");
	CHECK_STR_EQ(at(api, "integrations/H/type"), "HTTP_PROXY");
	CHECK_STR_EQ(at(api, "integrations/H/uri"), "http://127.0.0.1:9100/x");
	CHECK_STR_EQ(at(api, "integrations/H/method"), "PUT");
	CHECK_STR_EQ(at(api, "integrations/H/requestParameters/integration.request.header.X-Part"),
		     "'b'");
	CHECK_INT_EQ(json_integer_value(json_object_get(
		json_object_get(json_object_get(api, "integrations"), "H"), "timeoutMs")), 2000);
	CHECK_STR_EQ(at(api, "routes/go/integration"), "H");
	CHECK_CONTAINS(text(&warn), "parameter NoDefault has no Default");
	CHECK_CONTAINS(text(&warn), "Fn::ImportValue is not supported");
	CHECK_CONTAINS(text(&warn), "Odd (odd): Target  is not an imported integration");
	check_loads(api);
	json_decref(api);
}

static void test_authorizer_and_unsupported(void)
{
	const char *t =
		"Resources:\n"
		"  A: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: a, ProtocolType: WEBSOCKET,"
		" Body: {}}}\n"
		"  Auth:\n"
		"    Type: AWS::ApiGatewayV2::Authorizer\n"
		"    Properties:\n"
		"      ApiId: !Ref A\n"
		"      AuthorizerType: REQUEST\n"
		"      AuthorizerUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthFn.Arn}/invocations\n"
		"      IdentitySource: [route.request.header.Auth, $request.querystring.token]\n"
		"  I: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref A,"
		" IntegrationType: AWS, IntegrationUri: !GetAtt Fn.Arn, RequestTemplates: {x: y}}}\n"
		"  C: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref A, RouteKey: $connect,"
		" Target: integrations/I, AuthorizationType: CUSTOM, AuthorizerId: !Ref Auth}}\n"
		"  M: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref A, RouteKey: m,"
		" Target: integrations/I, AuthorizationType: AWS_IAM, ApiKeyRequired: true}}\n"
		"  Fn: {Type: AWS::Serverless::Function, Properties: {Handler: a.b}}\n"
		"  AuthFn: {Type: AWS::Serverless::Function, Properties: {Handler: a.auth}}\n"
		"  Other: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: HTTP}}\n";
	gw_tmpl_opts_t o = { .api = "A" };
	json_t *api = to_api(t, &o);

	CHECK_MSG(api != NULL, "%s", text(&err));
	if (!api)
		return;
	CHECK_STR_EQ(at(api, "authorizers/Auth/type"), "REQUEST");
	CHECK_STR_EQ(at(api, "authorizers/Auth/integration"), "Auth");
	CHECK_STR_EQ(at(api, "integrations/Auth/uri"), "http://127.0.0.1:9000/functions/AuthFn");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(json_object_get(
		json_object_get(api, "authorizers"), "Auth"), "identitySource"), 1)),
		"route.request.querystring.token");
	CHECK_STR_EQ(at(api, "routes/$connect/authorizer"), "Auth");
	CHECK(at(api, "routes/m/authorizer") == NULL);
	CHECK_CONTAINS(text(&warn), "A (AWS::ApiGatewayV2::Api): property Body is not supported");
	CHECK_CONTAINS(text(&warn), "I: IntegrationType AWS: request and response templates");
	CHECK_CONTAINS(text(&warn), "property RequestTemplates is not supported");
	CHECK_CONTAINS(text(&warn), "M (m): AuthorizationType AWS_IAM");
	CHECK_CONTAINS(text(&warn), "M (m): ApiKeyRequired");
	CHECK_CONTAINS(text(&warn), "Other (AWS::ApiGatewayV2::Api): another API");
	check_loads(api);
	json_decref(api);
}

static void test_http_api(void)
{
	const char *t =
		"Resources:\n"
		"  H: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: h, ProtocolType: HTTP,"
		" CorsConfiguration: {AllowOrigins: ['https://app.example'], MaxAge: 60}}}\n"
		"  I: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref H,"
		" IntegrationType: AWS_PROXY, PayloadFormatVersion: '2.0',"
		" IntegrationUri: !GetAtt Fn.Arn}}\n"
		"  R: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref H,"
		" RouteKey: 'GET /items/{id}', Target: !Sub 'integrations/${I}'}}\n"
		"  S: {Type: AWS::ApiGatewayV2::Stage, Properties: {ApiId: !Ref H, StageName: $default,"
		" AutoDeploy: true}}\n"
		"  Fn: {Type: AWS::Serverless::Function, Properties: {Handler: a.b}}\n";
	json_t *api = to_api(t, NULL);

	CHECK_MSG(api != NULL, "%s", text(&err));
	if (!api)
		return;
	CHECK_STR_EQ(at(json_object_get(json_object_get(api, "routes"), "GET /items/{id}"),
			"integration"), "I");
	CHECK(json_object_get(api, "routeSelectionExpression") == NULL);
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(json_object_get(api, "cors"),
								       "allowOrigins"), 0)),
		     "https://app.example");
	CHECK(json_object_get(api, "stage") == NULL);
	CHECK_CONTAINS(text(&warn), "StageName $default");
	check_loads(api);
	json_decref(api);
}

static void test_errors(void)
{
	static const struct { const char *yaml, *err; } cases[] = {
		{ "Resources: [\n", "invalid YAML" },
		{ "- a\n- b\n", "expected a template" },
		{ "Description: x\n", "Resources: expected a mapping" },
		{ "Resources: {F: {Type: AWS::Serverless::Function}}\n",
		  "no AWS::ApiGatewayV2::Api resource" },
		{ "Resources: {A: {Type: AWS::ApiGatewayV2::Api}, B: {Type: AWS::ApiGatewayV2::Api}}\n",
		  "2 AWS::ApiGatewayV2::Api resources: choose one with --api" },
		{ "Resources: {A: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: !Join [x]}}}\n",
		  "Fn::Join: expected [delimiter, [values]]" },
		{ "Resources: {A: {Type: AWS::ApiGatewayV2::Api, Properties: "
		  "{Name: !Sub ['${x}', {x: [1]}]}}}\n", "Fn::Sub: expected text, found a list" },
		/* A billion laughs: aliases expanded past the bound stop, quickly. */
		{ "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		  "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		  "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		  "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		  "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		  "Resources: {}\n", "more than 200000 values" },
	};
	gw_tmpl_opts_t o = { .api = "Nope" };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *api = to_api(cases[i].yaml, NULL);
		CHECK_MSG(api == NULL, "case %zu accepted", i);
		CHECK_CONTAINS(text(&err), cases[i].err);
		json_decref(api);
	}
	CHECK(to_api(chat, &o) == NULL);
	CHECK_CONTAINS(text(&err), "--api Nope: no AWS::ApiGatewayV2::Api");
	{
		/* Nesting past the bound is an error, not a deep recursion. */
		gw_buf_t b;
		gw_buf_init(&b);
		for (int i = 0; i < 200; i++)
			gw_buf_append_char(&b, '[');
		for (int i = 0; i < 200; i++)
			gw_buf_append_char(&b, ']');
		gw_buf_append_char(&b, '\0');
		CHECK(to_api(b.data, NULL) == NULL);
		CHECK_CONTAINS(text(&err), "nested deeper than");
		gw_buf_dispose(&b);
	}
}

static void test_functions(void)
{
	const char *t =
		"Globals:\n"
		"  Function:\n"
		"    Runtime: nodejs18.x\n"
		"    Timeout: 7\n"
		"    Environment: {Variables: {TABLE: !Ref T, SHARED: g}}\n"
		"Resources:\n"
		"  T: {Type: AWS::DynamoDB::Table, Properties: {KeySchema: [{AttributeName: k,"
		" KeyType: HASH}]}}\n"
		"  N: {Type: AWS::DynamoDB::Table, Properties: {TableName: !Sub '${AWS::StackName}-conns'}}\n"
		"  S: {Type: AWS::Serverless::SimpleTable, Properties: {PrimaryKey: {Name: n,"
		" Type: Number}}}\n"
		"  F:\n"
		"    Type: AWS::Serverless::Function\n"
		"    Properties:\n"
		"      CodeUri: src/\n"
		"      Handler: app.handler\n"
		"      Environment: {Variables: {SHARED: own, PORT: 80, NAMED: !Ref N}}\n"
		"      Events: {X: {Type: Api}}\n"
		"  P:\n"
		"    Type: AWS::Lambda::Function\n"
		"    Properties: {Handler: main.handler, Runtime: python3.12, Code: {ZipFile: x}}\n";
	static const gw_tmpl_opts_t none;
	json_t *f, *fns;

	gw_buf_reset(&warn);
	gw_buf_reset(&err);
	fns = gw_tmpl_functions(t, strlen(t), &none, &warn, &err);
	CHECK_MSG(fns != NULL, "%s", text(&err));
	if (!fns)
		return;
	f = json_object_get(json_object_get(fns, "functions"), "F");
	CHECK_STR_EQ(at(f, "handler"), "app.handler");
	CHECK_STR_EQ(at(f, "codeUri"), "src/");
	CHECK_STR_EQ(at(f, "runtime"), "nodejs18.x");
	CHECK_INT_EQ(json_integer_value(json_object_get(f, "timeout")), 7);
	CHECK_STR_EQ(at(f, "environment/TABLE"), "T");	/* unnamed: its logical ID */
	CHECK_STR_EQ(at(f, "environment/NAMED"), "wsgate-conns");
	CHECK_STR_EQ(at(f, "environment/SHARED"), "own");
	CHECK_STR_EQ(at(f, "environment/PORT"), "80");
	CHECK_CONTAINS(text(&warn), "F (AWS::Serverless::Function): property Events");
	CHECK_CONTAINS(text(&warn), "P: Runtime python3.12: the runner serves Node.js");
	CHECK_CONTAINS(text(&warn), "P: code in S3 or inline is not supported");
	/* Tables, for a local DynamoDB-compatible store. */
	f = json_object_get(fns, "tables");
	CHECK_STR_EQ(at(f, "T/TableName"), "T");
	CHECK(json_is_array(json_object_get(json_object_get(f, "T"), "KeySchema")));
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(f, "S"), "AttributeDefinitions"), 0), "AttributeType")), "N");
	json_decref(fns);
	/* A template that does not parse leaks nothing (fuzz finding
	 * template/leak-tables-on-parse-error). */
	gw_buf_reset(&err);
	CHECK(gw_tmpl_functions("Resources: [", 12, &none, &warn, &err) == NULL);
	CHECK_CONTAINS(text(&err), "invalid YAML");
}

int main(void)
{
	gw_buf_init(&warn);
	gw_buf_init(&err);
	RUN(test_websocket_api);
	RUN(test_runner_url_and_region);
	RUN(test_json_template);
	RUN(test_intrinsics);
	RUN(test_authorizer_and_unsupported);
	RUN(test_http_api);
	RUN(test_errors);
	RUN(test_functions);
	gw_buf_dispose(&warn);
	gw_buf_dispose(&err);
	UNIT_MAIN_END();
}
