package chaperone.authz_test

import rego.v1

import data.chaperone.authz

alice := {"subject": "alice", "groups": ["engineering"], "actor": null}

bob := {"subject": "bob", "groups": ["contractors"], "actor": null}

carol := {"subject": "carol", "groups": ["security"], "actor": null}

req(identity, method, segments) := {
	"attributes": {"request": {"http": {"method": method, "headers": {}}}},
	"parsed_path": segments,
	"parsed_query": {},
	"identity": identity,
	"identity_error": null,
	"route": {"id": "demo/0", "target": "demo", "checksum": "c"},
}

with_body(r, body) := object.union(r, {"parsed_body": body})

test_engineering_reads_demo if {
	d := authz.decision with input as req(alice, "GET", ["demo", "items"])
	d.allowed
	d.headers["x-chaperone-user"] == "alice"
	d.headers["x-chaperone-groups"] == "engineering"
	"authorization" in d.request_headers_to_remove
	d.reason == "rule engineering-read"
	not d.headers["x-chaperone-actor"]
}

test_engineering_reads_demo_root_and_deep_paths if {
	d1 := authz.decision with input as req(alice, "GET", ["demo"])
	d1.allowed
	d2 := authz.decision with input as req(alice, "HEAD", ["demo", "items", "1", "history"])
	d2.allowed
	d3 := authz.decision with input as req(alice, "GET", ["demo", ""])
	d3.allowed
}

test_contractors_get_nothing if {
	d := authz.decision with input as req(bob, "GET", ["demo", "items"])
	not d.allowed
	d.http_status == 403
	d.body.error == "forbidden"
	d.reason == "bob (groups contractors) may not GET /demo/items"
}

test_unauthenticated_is_401_with_the_verifier_reason if {
	r := object.union(req(null, "GET", ["demo", "items"]), {"identity_error": {"code": "ERR_TOKEN_EXPIRED", "reason": "token expired"}})
	d := authz.decision with input as r
	not d.allowed
	d.http_status == 401
	d.headers["www-authenticate"] == `Bearer error="invalid_token", error_description="token expired"`
	d.body == {"error": "unauthenticated", "code": "ERR_TOKEN_EXPIRED", "reason": "token expired"}
}

test_missing_identity_fields_are_unauthenticated if {
	d := authz.decision with input as {"attributes": {"request": {"http": {"method": "GET"}}}, "parsed_path": ["demo"]}
	d.http_status == 401
	d.body.code == "ERR_TOKEN_MISSING"
}

test_post_items_allowed_unless_critical if {
	ok := authz.decision with input as with_body(req(alice, "POST", ["demo", "items"]), {"priority": "low"})
	ok.allowed
	ok.reason == "rule engineering-create-items"
	no := authz.decision with input as with_body(req(alice, "POST", ["demo", "items"]), {"priority": "critical"})
	not no.allowed
	no.http_status == 403
	no.body == {"error": "forbidden", "reason": "critical items need approval"}
}

test_post_without_body_is_allowed if {
	d4 := authz.decision with input as req(alice, "POST", ["demo", "items"])
	d4.allowed
}

test_post_elsewhere_is_forbidden if {
	d := authz.decision with input as req(alice, "POST", ["demo", "other"])
	d.reason == "alice (groups engineering) may not POST /demo/other"
}

test_delete_needs_security_approval if {
	d := authz.decision with input as req(alice, "DELETE", ["demo", "items", "1"])
	not d.allowed
	d.http_status == 403
	d.approval.reviewers == ["security"]
	d.approval.ttl == "1h"
	d.body.error == "approval_required"
	d.reason == "approval required by security: deleting demo data needs a security review"
}

test_security_reads_but_contractors_cannot_delete if {
	d5 := authz.decision with input as req(carol, "GET", ["demo", "items"])
	d5.allowed
	d := authz.decision with input as req(bob, "DELETE", ["demo", "items", "1"])
	d.body.error == "forbidden"
}

test_unknown_target if {
	r := object.union(req(alice, "GET", ["elsewhere"]), {"route": {"id": "x/0", "target": "elsewhere", "checksum": "c"}})
	d := authz.decision with input as r
	d.reason == "no policy for target elsewhere"
	d.http_status == 403
}

test_target_falls_back_to_first_segment if {
	r := object.union(req(alice, "GET", ["demo", "items"]), {"route": null})
	d6 := authz.decision with input as r
	d6.allowed
}

# A person is (issuer, subject): upstreams learn whose alice it is, also behind an agent token, whose
# own issuer is Chaperone's.
test_issuer_header_names_the_persons_issuer if {
	person := object.union(alice, {"issuer": "https://a.example", "subject_issuer": "https://a.example"})
	d := authz.decision with input as req(person, "GET", ["demo", "items"])
	d.headers["x-chaperone-user"] == "alice"
	d.headers["x-chaperone-issuer"] == "https://a.example"
	agent := object.union(person, {
		"issuer": "https://chaperone.example",
		"actor": {"sub": "agent:bot", "agent": "bot"},
	})
	d2 := authz.decision with input as req(agent, "GET", ["demo", "items"])
	d2.headers["x-chaperone-issuer"] == "https://a.example"
}

test_issuer_header_falls_back_to_the_token_issuer if {
	recorded := object.union(alice, {"issuer": "https://b.example"})
	d := authz.decision with input as req(recorded, "GET", ["demo", "items"])
	d.headers["x-chaperone-issuer"] == "https://b.example"
}

test_agent_actor_header if {
	agent := object.union(alice, {"actor": {"sub": "alice", "agent": "report-bot", "run_id": "r1"}})
	d := authz.decision with input as req(agent, "GET", ["demo", "items"])
	d.headers["x-chaperone-actor"] == "report-bot"
	anon := object.union(alice, {"actor": {"sub": "svc-1"}})
	d2 := authz.decision with input as req(anon, "GET", ["demo", "items"])
	d2.headers["x-chaperone-actor"] == "svc-1"
}

test_glob_semantics if {
	targets := {"t": {"rules": [{"name": "one", "groups": ["g"], "methods": ["*"], "paths": ["/t/*/x"]}]}}
	id := {"subject": "u", "groups": ["g"], "actor": null}
	base := object.union(req(id, "PUT", ["t", "a", "x"]), {"route": {"id": "t/0", "target": "t", "checksum": "c"}})
	d7 := authz.decision with input as base with data.chaperone.targets as targets
	d7.allowed
	deeper := object.union(base, {"parsed_path": ["t", "a", "b", "x"]})
	d8 := authz.decision with input as deeper with data.chaperone.targets as targets
	not d8.allowed
}

test_allow_beats_approval_and_veto if {
	targets := {"t": {"rules": [
		{"name": "b-approval", "groups": ["g"], "methods": ["POST"], "paths": ["/t/**"], "approval": {"reviewers": ["r"], "ttl": "1h", "reason": "why"}},
		{"name": "a-veto", "groups": ["g"], "methods": ["POST"], "paths": ["/t/**"], "deny_if_body": {"field": "x", "equals": 1, "reason": "no x"}},
		{"name": "c-allow", "groups": ["g"], "methods": ["POST"], "paths": ["/t/**"]},
	]}}
	id := {"subject": "u", "groups": ["g"], "actor": null}
	r := with_body(object.union(req(id, "POST", ["t", "y"]), {"route": {"id": "t/0", "target": "t", "checksum": "c"}}), {"x": 1})
	d := authz.decision with input as r with data.chaperone.targets as targets
	d.allowed
	d.reason == "rule c-allow"
}

test_approval_beats_veto if {
	targets := {"t": {"rules": [
		{"name": "approval", "groups": ["g"], "methods": ["POST"], "paths": ["/t/**"], "approval": {"reviewers": ["r"], "ttl": "1h", "reason": "why"}},
		{"name": "veto", "groups": ["g"], "methods": ["POST"], "paths": ["/t/**"], "deny_if_body": {"field": "x", "equals": 1, "reason": "no x"}},
	]}}
	id := {"subject": "u", "groups": ["g"], "actor": null}
	r := with_body(object.union(req(id, "POST", ["t", "y"]), {"route": {"id": "t/0", "target": "t", "checksum": "c"}}), {"x": 1})
	d := authz.decision with input as r with data.chaperone.targets as targets
	d.body.error == "approval_required"
}

test_groups_absent_means_no_group if {
	id := {"subject": "u", "actor": null}
	d := authz.decision with input as req(id, "GET", ["demo", "items"])
	d.reason == "u (groups ) may not GET /demo/items"
}

test_granted_approval_allows_the_gated_request if {
	r := object.union(req(alice, "DELETE", ["demo", "items", "1"]), {"approval": {"id": "a1", "granted": true, "approved_by": "carol"}})
	d := authz.decision with input as r
	d.allowed
	d.reason == "rule delete-needs-security, approved by carol"
}

test_a_grant_does_not_open_other_rules if {
	r := object.union(req(bob, "DELETE", ["demo", "items", "1"]), {"approval": {"id": "a1", "granted": true, "approved_by": "carol"}})
	d := authz.decision with input as r
	not d.allowed
}

test_agent_token_limited_to_its_targets if {
	agent := object.union(alice, {"actor": {"sub": "agent:bot", "agent": "bot"}, "claims": {"targets": ["github"]}})
	d := authz.decision with input as req(agent, "GET", ["demo", "items"])
	not d.allowed
	d.reason == "agent token is not valid for target demo"
	ok := object.union(alice, {"actor": {"sub": "agent:bot", "agent": "bot"}, "claims": {"targets": ["demo"]}})
	d2 := authz.decision with input as req(ok, "GET", ["demo", "items"])
	d2.allowed
}

mcp_req(identity, tool, args) := object.union(req(identity, "POST", ["mcp"]), {
	"route": {"id": "tools/0", "target": "tools", "checksum": "c"},
	"protocol": {"name": "mcp", "method": "tools/call", "tool": tool, "arguments": args},
})

test_mcp_tool_allowed_by_name_and_argument if {
	d := authz.decision with input as mcp_req(alice, "read_file", {"path": "/srv/public/a.txt"})
	d.allowed
}

test_mcp_tool_argument_outside_prefix if {
	d := authz.decision with input as mcp_req(alice, "read_file", {"path": "/etc/passwd"})
	not d.allowed
	d.reason == "read_file is confined to /srv/public/"
}

test_mcp_unlisted_tool if {
	d := authz.decision with input as mcp_req(alice, "drop_database", {})
	not d.allowed
	d.reason == "alice (groups engineering) may not call the MCP tool drop_database"
}

test_mcp_session_plumbing_allowed if {
	r := object.union(req(alice, "POST", ["mcp"]), {
		"route": {"id": "tools/0", "target": "tools", "checksum": "c"},
		"protocol": {"name": "mcp", "method": "tools/list"},
	})
	d := authz.decision with input as r
	d.allowed
}

test_allow_carries_the_rule_masks if {
	targets := {"crm": {"rules": [{"name": "read", "groups": ["engineering"], "methods": ["GET"], "paths": ["/crm/**"], "masks": {"detectors": ["email"]}}]}}
	r := object.union(req(alice, "GET", ["crm", "customers"]), {"route": {"id": "crm/0", "target": "crm", "checksum": "c"}})
	d := authz.decision with input as r with data.chaperone.targets as targets
	d.allowed
	d.masks == {"detectors": ["email"]}
}

test_mcp_tool_needing_approval if {
	d := authz.decision with input as mcp_req(alice, "delete_repo", {"name": "prod"})
	not d.allowed
	d.approval.reviewers == ["security"]
}

body_req(body, content_type) := object.union(req(alice, "POST", ["demo", "items"]), {"attributes": {"request": {"http": {
	"method": "POST",
	"headers": {"content-type": content_type},
	"body": body,
}}}})

test_body_rule_reads_form_values_and_key_variants if {
	# Form bodies: values are arrays, a repeated field has several; keys are compared without case.
	form := "application/x-www-form-urlencoded"
	d1 := authz.decision with input as with_body(body_req("priority=low&priority=critical", form), {"priority": ["low", "critical"]})
	d1.reason == "critical items need approval"
	d2 := authz.decision with input as with_body(body_req("Priority=critical", form), {"Priority": ["critical"]})
	d2.reason == "critical items need approval"
	d3 := authz.decision with input as with_body(body_req("{}", "application/json"), {"PRIORITY": "critical"})
	d3.reason == "critical items need approval"
	d4 := authz.decision with input as with_body(body_req("{}", "application/json"), {"priority": ["critical"]})
	not d4.allowed
	ok := authz.decision with input as with_body(body_req("priority=low", form), {"priority": ["low"]})
	ok.allowed
}

test_body_rule_refuses_bodies_it_cannot_read if {
	# The authz server leaves text/plain, text/json and bodies without a content type unparsed.
	d1 := authz.decision with input as body_req("{\"priority\":\"critical\"}", "text/plain")
	not d1.allowed
	d1.reason == "the body rule cannot read a body of content type text/plain (send a JSON object or a form)"
	d2 := authz.decision with input as body_req("{\"priority\":\"critical\"}", "text/json")
	not d2.allowed
	d3 := authz.decision with input as with_body(body_req("[]", "application/json"), [{"priority": "critical"}])
	not d3.allowed
	d4 := authz.decision with input as object.union(req(alice, "POST", ["demo", "items"]), {"truncated_body": true})
	d4.reason == "the request body was truncated, so its body rule cannot be checked"
}

test_rules_without_body_rules_ignore_unread_bodies if {
	r := object.union(body_req("x", "text/plain"), {"parsed_path": ["demo", "other"]})
	targets := {"demo": {"rules": [{"name": "any-post", "groups": ["engineering"], "methods": ["POST"], "paths": ["/demo/**"]}]}}
	d := authz.decision with input as r with data.chaperone.targets as targets
	d.allowed
}

test_mcp_tool_argument_spellings_that_escape_the_directory if {
	every path in [
		"/srv/public/../../etc/passwd",
		"/srv/public/%2e%2e/etc/passwd",
		"/srv/public\\..\\secret",
		"/srv/public-other/a",
		"srv/public/a",
	] {
		d := authz.decision with input as mcp_req(alice, "read_file", {"path": path})
		d.reason == "read_file is confined to /srv/public/"
	}
	missing := authz.decision with input as mcp_req(alice, "read_file", {"Path": "/srv/public/a"})
	not missing.allowed
	ok := authz.decision with input as mcp_req(alice, "read_file", {"path": "/srv//public/a.txt"})
	ok.allowed
}
