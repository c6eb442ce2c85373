# Bench case "jwt-rbac": verify an RS256 bearer token in Rego against a JWKS held in data, then allow
# when one of the token's groups grants the request's method on a path prefix. The JWKS, issuer and
# audience are generated at bench start into keys/data.json (data.keys); permissions are data.rbac.
package envoy.authz

default allow := false

bearer := token if {
	header := input.attributes.request.http.headers.authorization
	startswith(header, "Bearer ")
	token := substring(header, 7, -1)
}

claims := payload if {
	[valid, _, payload] := io.jwt.decode_verify(bearer, {
		"cert": data.keys.jwks,
		"iss": data.keys.issuer,
		"aud": data.keys.audience,
	})
	valid
}

allow if {
	some group in claims.groups
	some grant in data.rbac.group_grants[group]
	grant.method == input.attributes.request.http.method
	startswith(input.attributes.request.http.path, grant.path_prefix)
}
