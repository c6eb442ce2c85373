# OPA-Envoy's side of bench:gateway: the decision of Chaperone's shipped policy
# (policies/chaperone/authz/decision.rego, loaded unchanged beside this file), with the caller's RS256
# JWT verified here in Rego against the dev issuer's JWKS — the way an OPA-Envoy deployment without a
# separate authenticating proxy does it. The harness writes data.bench.issuer {issuer, audience, jwks}.
package envoy.authz

import rego.v1

bearer := substring(header, 7, -1) if {
	header := input.attributes.request.http.headers.authorization
	startswith(header, "Bearer ")
}

verified := [valid, payload] if {
	[valid, _, payload] := io.jwt.decode_verify(bearer, {
		"cert": data.bench.issuer.jwks,
		"iss": data.bench.issuer.issuer,
		"aud": data.bench.issuer.audience,
	})
}

# The identity document Chaperone's authz server gives the policy (subject, groups, claims).
identity := {
	"subject": payload.sub,
	"issuer": payload.iss,
	"groups": object.get(payload, "groups", []),
	"claims": payload,
} if {
	verified[0] == true
	payload := verified[1]
}

chaperone_input := object.union(input, {"identity": identity}) if {
	identity
} else := object.union(input, {
	"identity": null,
	"identity_error": {"code": "ERR_TOKEN_INVALID", "reason": "missing or invalid token"},
})

decision := d if {
	d := data.chaperone.authz.decision with input as chaperone_input
}

# OPA-Envoy's result object: the same fields, with the body as the string OPA-Envoy expects;
# Chaperone's own `reason` is not an OPA-Envoy field and is left out.
allow := object.union(object.remove(decision, ["body", "reason"]), {"body": json.marshal(decision.body)}) if {
	decision.body
} else := object.remove(decision, ["reason"])
