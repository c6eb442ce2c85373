# MCP: listings filtered by the same rules as calls, resources and prompts, the 401 that names
# the resource metadata (RFC 9728). Helpers (req, alice, mcp_req) are in decision_test.rego.
package chaperone.authz_test

import rego.v1

import data.chaperone.authz

mcp_list(identity, method) := object.union(req(identity, "POST", ["mcp"]), {
	"route": {"id": "tools/0", "target": "tools", "checksum": "c"},
	"protocol": {"name": "mcp", "method": method, "http_method": "POST"},
})

test_mcp_listing_shows_what_the_rules_let_the_caller_use if {
	d := authz.decision with input as mcp_list(alice, "tools/list")
	d.allowed

	# read_file and list_files by the allow rule, delete_repo after an approval; nothing else.
	d.mcp_visible.tools == ["delete_repo", "list_files", "read_file"]
	d.mcp_visible.resources == ["*"]
	d.mcp_visible.prompts == ["*"]
}

test_mcp_listing_on_the_event_stream_too if {
	r := object.union(req(alice, "GET", ["mcp"]), {
		"route": {"id": "tools/0", "target": "tools", "checksum": "c"},
		"protocol": {"name": "mcp", "method": null, "http_method": "GET"},
	})
	d := authz.decision with input as r
	d.allowed

	# The rules that let this GET through decide (the approval rule names POST only).
	d.mcp_visible.tools == ["list_files", "read_file"]
}

test_mcp_listing_unfiltered_when_a_rule_names_no_tools if {
	targets := {"tools": {"rules": [{"name": "all", "groups": ["engineering"], "methods": ["POST"], "paths": ["/mcp"]}]}}
	d := authz.decision with input as mcp_list(alice, "tools/list") with data.chaperone.targets as targets
	d.allowed
	not d.mcp_visible
}

test_mcp_calls_carry_no_listing_filter if {
	d := authz.decision with input as mcp_req(alice, "read_file", {"path": "/srv/public/a.txt"})
	d.allowed
	not d.mcp_visible
}

mcp_targets := {"tools": {"rules": [{
	"name": "docs",
	"groups": ["engineering"],
	"methods": ["POST"],
	"paths": ["/mcp"],
	"tools": ["search"],
	"resources": ["file:///srv/docs/*", "memo://today"],
	"prompts": ["summarise"],
}]}}

mcp_read(uri) := object.union(mcp_list(alice, "resources/read"), {"protocol": {"name": "mcp", "method": "resources/read", "uri": uri}})

mcp_prompt(name) := object.union(mcp_list(alice, "prompts/get"), {"protocol": {"name": "mcp", "method": "prompts/get", "prompt": name}})

test_mcp_resources_and_prompts_by_rule if {
	reads := {"file:///srv/docs/a.md": true, "memo://today": true, "file:///etc/passwd": false, "memo://today/x": false}
	every uri, allowed in reads {
		d := authz.decision with input as mcp_read(uri) with data.chaperone.targets as mcp_targets
		d.allowed == allowed
	}
	every name, allowed in {"summarise": true, "exfiltrate": false} {
		d := authz.decision with input as mcp_prompt(name) with data.chaperone.targets as mcp_targets
		d.allowed == allowed
	}
	l := authz.decision with input as mcp_list(alice, "resources/list") with data.chaperone.targets as mcp_targets
	l.mcp_visible == {"tools": ["search"], "resources": ["file:///srv/docs/*", "memo://today"], "prompts": ["summarise"]}
}

mcp_unauth(error) := object.union(req(null, "POST", ["mcp"]), {
	"route": {
		"id": "tools/0", "target": "tools", "checksum": "c",
		"resource": "https://gw.example.com/mcp",
		"resource_metadata": "https://gw.example.com/.well-known/oauth-protected-resource/mcp",
	},
	"identity_error": error,
})

test_mcp_401_names_the_resource_metadata if {
	d := authz.decision with input as mcp_unauth({"code": "ERR_TOKEN_MISSING", "reason": "missing token"})
	d.http_status == 401
	d.headers["www-authenticate"] == `Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/mcp"`
}

test_mcp_401_for_a_refused_token_is_invalid_token if {
	reason := `the token was not issued for https://gw.example.com/mcp ("aud") é`
	d := authz.decision with input as mcp_unauth({"code": "ERR_TOKEN_AUDIENCE", "reason": reason})
	d.http_status == 401

	# Quotes and characters a quoted-string cannot carry are dropped from the description.
	d.headers["www-authenticate"] == concat("", [
		`Bearer error="invalid_token", error_description="the token was not issued for https://gw.example.com/mcp (aud) ", `,
		`resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/mcp"`,
	])
}
