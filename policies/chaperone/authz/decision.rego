# Chaperone's default policy library: deny by default, allow by group per target, method and path
# glob, with per-rule body vetoes and human approval. Rules are data (data.chaperone.targets), so a
# security engineer changes who may do what without writing Rego; this file is the engine.
#
# Entrypoint: chaperone/authz/decision. The decision is always defined and always an object with
# OPA-Envoy's fields (allowed, headers, request_headers_to_remove, http_status, body, …) plus reason.
package chaperone.authz

import rego.v1

import data.chaperone.lib.paths

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
	resource_matches(rule)
	prompt_matches(rule)
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

mcp_read := input.protocol if {
	input.protocol.name == "mcp"
	input.protocol.method == "resources/read"
}

mcp_prompt := input.protocol if {
	input.protocol.name == "mcp"
	input.protocol.method == "prompts/get"
}

# `resources` (URIs; a trailing `*` matches any URI starting with what precedes it) and `prompts`
# (names, `*` for any) work like `tools`: absent, the rule does not look at them.
resource_matches(rule) if not rule.resources

resource_matches(rule) if {
	rule.resources
	not mcp_read
}

resource_matches(rule) if {
	some pattern in rule.resources
	uri_matches(pattern, mcp_read.uri)
}

prompt_matches(rule) if not rule.prompts

prompt_matches(rule) if {
	rule.prompts
	not mcp_prompt
}

prompt_matches(rule) if {
	some name in rule.prompts
	name in {"*", mcp_prompt.prompt}
}

# The same two forms the response filter applies to listed items (authz-server/masking/mcp-listing.ts).
uri_matches(pattern, uri) if pattern == uri

uri_matches(pattern, uri) if {
	endswith(pattern, "*")
	startswith(uri, trim_suffix(pattern, "*"))
}

# --- MCP listings: what the caller may see (tools/list, resources/list, prompts/list, the GET stream) ---

# The same rules that decide tools/call, resources/read and prompts/get decide what a listing shows:
# every rule that lets this caller list (granting, or granting after an approval) contributes what it
# names — ["*"] when it names nothing of that kind. Chaperone's response processor drops the rest from
# the upstream's answer and records what it hid.
mcp_listing if {
	input.protocol.name == "mcp"
	input.protocol.method in {"tools/list", "resources/list", "resources/templates/list", "prompts/list"}
}

# A GET opens the server's event stream, which carries a listing only when a stream is resumed.
mcp_listing if {
	input.protocol.name == "mcp"
	input.protocol.http_method == "GET"
}

listing_rules := granting | needing_approval

visible_of(kind) := sort({name |
	some rule in listing_rules
	some name in object.get(rule, kind, ["*"])
})

mcp_visible := {"tools": visible_of("tools"), "resources": visible_of("resources"), "prompts": visible_of("prompts")}

mcp_visible_fields := {"mcp_visible": mcp_visible} if {
	mcp_listing
	some kind, names in mcp_visible
	not "*" in names
} else := {}

# --- vetoes: [rule name, reason] for each matching rule a body or argument check refuses ---

# `deny_if_body` fires when any value the body gives the field equals the rule's value. Keys are
# compared without case (Go's encoding/json and others decode case-insensitively; the authz server
# already refused bodies holding two spellings), and every value of a form field (form values are
# arrays) or of a JSON array counts.
vetoes contains [rule.name, veto.reason] if {
	some rule in matching
	veto := rule.deny_if_body
	veto.equals in body_values(veto.field)
}

# A body the rule cannot read — sent in another content type (none, text/plain, text/json, multipart),
# truncated, or not a JSON object — vetoes: the upstream may parse what the rule never saw.
vetoes contains [rule.name, unreadable_body_reason] if {
	some rule in matching
	rule.deny_if_body
	body_sent
	not is_object(object.get(input, "parsed_body", null))
}

# An MCP tool argument must be a plain absolute path inside a directory (data.chaperone.lib.paths:
# dot segments, encodings and backslashes are refused, not resolved).
vetoes contains [rule.name, veto.reason] if {
	some rule in matching
	veto := rule.tool_argument_prefix
	mcp_call.tool == veto.tool
	not paths.within(object.get(mcp_call.arguments, veto.argument, null), veto.prefix)
}

vetoed(rule) if {
	some [name, _] in vetoes
	name == rule.name
}

body_values(field) := {v |
	some key, value in input.parsed_body
	is_string(key)
	lower(key) == lower(field)
	some v in as_list(value)
}

as_list(x) := x if is_array(x)

else := [x]

body_sent if input.truncated_body == true

body_sent if input.attributes.request.http.body != ""

body_sent if input.attributes.request.http.rawBody != ""

body_content_type := input.attributes.request.http.headers["content-type"] if {
	is_string(input.attributes.request.http.headers["content-type"])
} else := "none"

unreadable_body_reason := "the request body was truncated, so its body rule cannot be checked" if {
	input.truncated_body == true
} else := sprintf("the body rule cannot read a body of content type %s (send a JSON object or a form)", [body_content_type])

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
} else := over_limit if {
	count(exceeded) > 0
	count(granting | needing_approval) > 0
} else := usage_unreported if {
	budgeted_stream_without_usage
	count(granting | needing_approval) > 0
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

# RFC 6750 section 3 and RFC 9728 section 5.1: on an MCP target that publishes its metadata, the
# challenge names it (MCP clients discover where to log in from it); a token that was sent but refused
# is `invalid_token`, with the reason in characters a quoted-string may carry.
challenge_params contains sprintf("resource_metadata=\"%s\"", [input.route.resource_metadata]) if {
	is_string(input.route.resource_metadata)
}

challenge_params contains "error=\"invalid_token\"" if identity_problem.code != "ERR_TOKEN_MISSING"

challenge_params contains sprintf("error_description=\"%s\"", [quotable(identity_problem.reason)]) if {
	identity_problem.code != "ERR_TOKEN_MISSING"
}

quotable(text) := regex.replace(text, `[^\x20\x21\x23-\x5b\x5d-\x7e]`, "")

# `resource_metadata` first: some clients read only the first parameter.
www_authenticate := "Bearer" if {
	count(challenge_params) == 0
} else := concat(" ", ["Bearer", concat(", ", sort(challenge_params))])

unauthenticated := {
	"allowed": false,
	"http_status": 401,
	"headers": {"www-authenticate": www_authenticate},
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
allow := object.union_n([allow_base, mask_fields, mcp_visible_fields])

mask_fields := {"masks": rule.masks} if {
	some rule in granting
	rule.name == first_name(granting)
	rule.masks
} else := {}

# The person behind the request is (issuer, subject): `x-chaperone-user` alone is ambiguous when two
# issuers both have an "alice", so `x-chaperone-issuer` names whose alice it is (the person's own issuer,
# also behind an agent token). Inputs recorded before subject_issuer existed fall back to the issuer.
issuer_headers := {"x-chaperone-issuer": input.identity.subject_issuer} if {
	is_string(input.identity.subject_issuer)
} else := {"x-chaperone-issuer": input.identity.issuer} if {
	is_string(input.identity.issuer)
} else := {}

allow_base := {
	"allowed": true,
	"headers": object.union_n([
		{
			"x-chaperone-user": input.identity.subject,
			"x-chaperone-groups": concat(",", groups),
		},
		issuer_headers,
		actor_headers,
	]),
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

veto_reason := sort([reason | some [name, reason] in vetoes; name == veto_rule.name])[0]

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

# --- rate limits and token budgets (input.usage: counts of the current windows, and the limits) ---

# A limit is reached when its scope's count in its window is at or over it. Counts are the fleet's
# (every node sharing the store; a node adds others' counts within about a second); tokens are counted
# from what the upstream reported, so the request that crosses a budget is allowed and the next refused.
exceeded contains limit if {
	some limit in input.usage.limits
	used := input.usage[limit.per][limit.window][limit.kind]
	used >= limit.limit
}

retry_after := max({input.usage.windows[l.window].resets_in | some l in exceeded})

# The limit to name: the one that resets last (the wait the client must honour), then by name.
exceeded_limit := sort([[0 - input.usage.windows[l.window].resets_in, l.name, l] | some l in exceeded])[0][2]

limit_reason := sprintf("%s: %d %s per %s for this %s (%s)", [
	exceeded_limit.name, exceeded_limit.limit, exceeded_limit.kind,
	exceeded_limit.window, exceeded_limit.per, limit_scope_name,
])

limit_scope_name := sprintf("%s via %s", [input.identity.subject, actor_name]) if {
	exceeded_limit.per == "agent"
} else := target if {
	exceeded_limit.per == "target"
} else := input.identity.subject

limit_error := {"requests": "rate_limited", "tokens": "budget_exhausted"}[exceeded_limit.kind]

# An LLM client shows the provider's own error shape: Anthropic's for its API, OpenAI's (which
# OpenAI-compatible clients read: error.message, error.type) for the others.
over_limit_body := {"type": "error", "error": {"type": "rate_limit_error", "message": limit_reason}} if {
	input.protocol.name == "llm"
	input.protocol.provider == "anthropic"
} else := {"error": {
	"message": limit_reason,
	"type": limit_error,
	"code": limit_error,
	"param": null,
	"limit": exceeded_limit.name,
	"retry_after": retry_after,
}} if {
	input.protocol.name == "llm"
} else := {
	"error": limit_error,
	"limit": exceeded_limit.name,
	"reason": limit_reason,
	"retry_after": retry_after,
}

over_limit := {
	"allowed": false,
	"http_status": 429,
	"headers": {"retry-after": format_int(retry_after, 10)},
	"body": over_limit_body,
	"reason": limit_reason,
}

# A token budget counts what the answer reports: a streamed chat completion reports its usage only when
# asked (`stream_options.include_usage: true`), so on a budgeted target it must ask.
budgeted_stream_without_usage if {
	input.protocol.name == "llm"
	input.protocol.stream == true
	input.protocol.stream_usage == false
	some limit in input.usage.limits
	limit.kind == "tokens"
}

usage_unreported := {
	"allowed": false,
	"http_status": 400,
	"body": {"error": "usage_required", "reason": usage_unreported_reason},
	"reason": usage_unreported_reason,
}

usage_unreported_reason := "this target has a token budget: a streamed chat completion must set stream_options.include_usage to true"
