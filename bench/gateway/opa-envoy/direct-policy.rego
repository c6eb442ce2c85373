# OPA-Envoy's side of bench:gateway with `--opa-policy direct`: the same decision as Chaperone's
# shipped policy gives for the demo target (engineering may GET/HEAD /demo and /demo/**; the
# same upstream headers; the token removed; 401 without a valid token, 403 otherwise), written the
# way an OPA user would write this one rule — no rule library, no `with` — with the RS256 JWT verified
# here in Rego. The harness writes data.bench.issuer {issuer, audience, jwks}.
package envoy.authz

import rego.v1

http := input.attributes.request.http

bearer := substring(http.headers.authorization, 7, -1) if startswith(http.headers.authorization, "Bearer ")

verified := [valid, payload] if {
	[valid, _, payload] := io.jwt.decode_verify(bearer, {
		"cert": data.bench.issuer.jwks,
		"iss": data.bench.issuer.issuer,
		"aud": data.bench.issuer.audience,
	})
}

claims := verified[1] if verified[0] == true

groups := object.get(claims, "groups", [])

path := concat("/", array.concat([""], input.parsed_path))

granted if {
	"engineering" in groups
	http.method in {"GET", "HEAD"}
	input.parsed_path[0] == "demo"
	glob.match("/demo{,/**}", ["/"], path)
}

default allow := {
	"allowed": false,
	"http_status": 401,
	"headers": {"www-authenticate": "Bearer"},
	"body": "{\"error\":\"unauthenticated\"}",
}

allow := {
	"allowed": true,
	"headers": {"x-chaperone-user": claims.sub, "x-chaperone-groups": concat(",", groups)},
	"request_headers_to_remove": ["authorization"],
} if {
	granted
} else := {
	"allowed": false,
	"http_status": 403,
	"body": json.marshal({"error": "forbidden", "reason": sprintf("%s may not %s %s", [claims.sub, http.method, path])}),
} if {
	claims
}
