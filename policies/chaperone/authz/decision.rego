# Chaperone's default policy library: deny by default, allow by group per target, method and path
# glob, with per-rule body vetoes and human approval. Rules are data (data.chaperone.targets), so a
# security engineer changes who may do what without writing Rego; this file is the engine.
#
# Entrypoint: chaperone/authz/decision. The decision is always defined and always an object with
# OPA-Envoy's fields (allowed, headers, request_headers_to_remove, http_status, body, …) plus reason.
package chaperone.authz

import rego.v1

# The target this request is for: the route's target from Envoy's context_extensions, or the first
# path segment when the request arrived without route metadata (e.g. a hand-written Envoy config).
target := input.route.target if {
	is_string(input.route.target)
} else := input.parsed_path[0]

method := input.attributes.request.http.method

# The canonical path rebuilt from the parsed segments (the server already rejected non-canonical
# raw paths), so globs never see dot segments or encoded slashes.
path := concat("/", array.concat([""], input.parsed_path))

authenticated if is_object(input.identity)

groups := input.identity.groups if is_array(input.identity.groups)

else := []

# --- rule matching ---

rules := data.chaperone.targets[target].rules

method_matches(rule) if "*" in rule.methods

method_matches(rule) if method in rule.methods

# `*` matches within one segment, `**` across segments: /demo/** is everything under /demo/.
path_matches(rule) if {
	some pattern in rule.paths
	glob.match(pattern, ["/"], path)
}

group_matches(rule) if {
	some g in rule.groups
	g in groups
}

matching contains rule if {
	some rule in rules
	group_matches(rule)
	method_matches(rule)
	path_matches(rule)
	tool_matches(rule)
}

# --- MCP (input.protocol, when the route declares protocol: mcp) ---

mcp_call := input.protocol if {
	input.protocol.name == "mcp"
	input.protocol.method == "tools/call"
}

# A rule without `tools` does not look at MCP; one with `tools` lets through the session plumbing
# (initialize, tools/list, notifications, …) and only the tool calls it names.
tool_matches(rule) if not rule.tools

tool_matches(rule) if {
	rule.tools
	not mcp_call
}

tool_matches(rule) if {
	some name in rule.tools
	name in {"*", mcp_call.tool}
}

vetoed(rule) if {
	veto := rule.deny_if_body
	object.get(input, ["parsed_body", veto.field], null) == veto.equals
}

# An MCP tool argument must start with a prefix (e.g. a file tool confined to one directory).
vetoed(rule) if {
	veto := rule.tool_argument_prefix
	mcp_call.tool == veto.tool
	not startswith(object.get(mcp_call.arguments, veto.argument, ""), veto.prefix)
}

granting contains rule if {
	some rule in matching
	not rule.approval
	not vetoed(rule)
}

# A human approved exactly this request (the authz server matched its fingerprint to a grant).
granting contains rule if {
	some rule in matching
	rule.approval
	input.approval.granted == true
	not vetoed(rule)
}

needing_approval contains rule if {
	some rule in matching
	rule.approval
	not vetoed(rule)
}

vetoing contains rule if {
	some rule in matching
	vetoed(rule)
}

first_name(set) := sort([r.name | some r in set])[0]

# --- the decision: unauthenticated → allow → approval → veto → unknown target → forbidden ---

# METADATA
# description: The answer for Envoy's ext_authz Check (OPA-Envoy result fields plus reason).
# entrypoint: true
decision := unauthenticated if {
	not authenticated
} else := agent_not_for_target if {
	agent_target_restricted
} else := allow if {
	count(granting) > 0
} else := approval_required if {
	count(needing_approval) > 0
} else := vetoed_by_body if {
	count(vetoing) > 0
} else := no_target if {
	not data.chaperone.targets[target]
} else := forbidden

# An agent token names the targets it may reach (`targets` claim); anything else is refused whatever
# the human behind it may do.
agent_target_restricted if {
	is_array(input.identity.claims.targets)
	not target in input.identity.claims.targets
}

agent_not_for_target := {
	"allowed": false,
	"http_status": 403,
	"body": {"error": "forbidden", "reason": sprintf("agent token is not valid for target %s", [target])},
	"reason": sprintf("agent token is not valid for target %s", [target]),
}

identity_problem := input.identity_error if is_object(input.identity_error)

else := {"code": "ERR_TOKEN_MISSING", "reason": "missing token"}

unauthenticated := {
	"allowed": false,
	"http_status": 401,
	"headers": {"www-authenticate": "Bearer"},
	"body": {"error": "unauthenticated", "code": identity_problem.code, "reason": identity_problem.reason},
	"reason": sprintf("unauthenticated: %s", [identity_problem.reason]),
}

actor_name := input.identity.actor.agent if {
	is_string(input.identity.actor.agent)
} else := input.identity.actor.sub

actor_headers := {"x-chaperone-actor": actor_name} if is_object(input.identity.actor)

else := {}

# The granting rule's response masks (JSON paths, detectors) go with the allow; Chaperone's ext_proc
# server applies them to the response body.
allow := object.union(allow_base, mask_fields)

mask_fields := {"masks": rule.masks} if {
	some rule in granting
	rule.name == first_name(granting)
	rule.masks
} else := {}

allow_base := {
	"allowed": true,
	"headers": object.union(
		{
			"x-chaperone-user": input.identity.subject,
			"x-chaperone-groups": concat(",", groups),
		},
		actor_headers,
	),
	"request_headers_to_remove": ["authorization"],
	"reason": allow_reason,
}

allow_reason := sprintf("rule %s, approved by %s", [first_name(granting), input.approval.approved_by]) if {
	input.approval.granted == true
} else := sprintf("rule %s", [first_name(granting)])

approval_rule := [r | some r in needing_approval; r.name == first_name(needing_approval)][0]

approval_required := {
	"allowed": false,
	"http_status": 403,
	"approval": approval_rule.approval,
	"body": {"error": "approval_required", "reason": approval_rule.approval.reason},
	"reason": sprintf("approval required by %s: %s", [concat(",", approval_rule.approval.reviewers), approval_rule.approval.reason]),
}

veto_rule := [r | some r in vetoing; r.name == first_name(vetoing)][0]

veto_reason := veto_rule.deny_if_body.reason if veto_rule.deny_if_body

else := veto_rule.tool_argument_prefix.reason

vetoed_by_body := {
	"allowed": false,
	"http_status": 403,
	"body": {"error": "forbidden", "reason": veto_reason},
	"reason": veto_reason,
}

no_target := {
	"allowed": false,
	"http_status": 403,
	"body": {"error": "forbidden", "reason": sprintf("no policy for target %s", [target])},
	"reason": sprintf("no policy for target %s", [target]),
}

forbidden_reason := sprintf("%s (groups %s) may not call the MCP tool %s", [input.identity.subject, concat(",", groups), mcp_call.tool]) if {
	mcp_call
} else := sprintf("%s (groups %s) may not %s %s", [input.identity.subject, concat(",", groups), method, path])

forbidden := {
	"allowed": false,
	"http_status": 403,
	"body": {"error": "forbidden", "reason": forbidden_reason},
	"reason": forbidden_reason,
}
