# Rate limits and token budgets from input.usage: 429 with Retry-After, in the provider's shape on
# LLM targets. Helpers (req, alice, bob) are in decision_test.rego.
package chaperone.authz_test

import rego.v1

import data.chaperone.authz

usage(counts, limits) := {
	"windows": {"minute": {"start": 0, "resets_in": 12}, "day": {"start": 0, "resets_in": 3600}},
	"user": counts,
	"agent": null,
	"target": {"minute": {"requests": 0, "tokens": 0}, "day": {"requests": 0, "tokens": 0}},
	"limits": limits,
}

token_budget := {"name": "daily-tokens", "per": "user", "kind": "tokens", "window": "day", "limit": 100}

rate := {"name": "rpm", "per": "user", "kind": "requests", "window": "minute", "limit": 5}

test_under_every_limit_is_allowed if {
	counts := {"minute": {"requests": 4, "tokens": 50}, "day": {"requests": 4, "tokens": 99}}
	r := object.union(req(alice, "GET", ["demo", "items"]), {"usage": usage(counts, [token_budget, rate])})
	d := authz.decision with input as r
	d.allowed
}

test_a_spent_budget_is_429_with_retry_after if {
	counts := {"minute": {"requests": 1, "tokens": 40}, "day": {"requests": 3, "tokens": 120}}
	r := object.union(req(alice, "GET", ["demo", "items"]), {"usage": usage(counts, [token_budget, rate])})
	d := authz.decision with input as r
	not d.allowed
	d.http_status == 429
	d.headers["retry-after"] == "3600"
	d.body.error == "budget_exhausted"
	d.body.limit == "daily-tokens"
	d.body.retry_after == 3600
	d.reason == "daily-tokens: 100 tokens per day for this user (alice)"
}

test_a_reached_rate_is_429_until_the_minute_ends if {
	counts := {"minute": {"requests": 5, "tokens": 0}, "day": {"requests": 5, "tokens": 0}}
	r := object.union(req(alice, "GET", ["demo", "items"]), {"usage": usage(counts, [token_budget, rate])})
	d := authz.decision with input as r
	d.http_status == 429
	d.headers["retry-after"] == "12"
	d.body.error == "rate_limited"
}

test_both_reached_waits_for_the_later_window if {
	counts := {"minute": {"requests": 9, "tokens": 0}, "day": {"requests": 9, "tokens": 500}}
	r := object.union(req(alice, "GET", ["demo", "items"]), {"usage": usage(counts, [token_budget, rate])})
	d := authz.decision with input as r
	d.headers["retry-after"] == "3600"
}

test_limits_do_not_turn_a_forbidden_request_into_429 if {
	counts := {"minute": {"requests": 9, "tokens": 0}, "day": {"requests": 9, "tokens": 500}}
	r := object.union(req(bob, "GET", ["demo", "items"]), {"usage": usage(counts, [token_budget, rate])})
	d := authz.decision with input as r
	d.http_status == 403
}

test_an_agent_limit_counts_the_agent_only if {
	agent := object.union(alice, {"actor": {"sub": "agent:bot", "agent": "bot"}, "claims": {}})
	per_agent := {"name": "bot-rpm", "per": "agent", "kind": "requests", "window": "minute", "limit": 2}
	spent := {"minute": {"requests": 2, "tokens": 0}, "day": {"requests": 2, "tokens": 0}}
	fresh := {"minute": {"requests": 0, "tokens": 0}, "day": {"requests": 0, "tokens": 0}}
	u := object.union(usage(fresh, [per_agent]), {"agent": spent})
	d := authz.decision with input as object.union(req(agent, "GET", ["demo", "items"]), {"usage": u})
	d.http_status == 429
	d.reason == "bot-rpm: 2 requests per minute for this agent (alice via bot)"

	# The person without the agent is not counted by it.
	ok := authz.decision with input as object.union(req(alice, "GET", ["demo", "items"]), {"usage": usage(fresh, [per_agent])})
	ok.allowed
}

llm_stream(usage_flag) := object.union(req(alice, "GET", ["demo", "items"]), {
	"usage": usage({"minute": {"requests": 0, "tokens": 0}, "day": {"requests": 0, "tokens": 0}}, [token_budget]),
	"protocol": {"name": "llm", "stream": true, "stream_usage": usage_flag},
})

test_a_budgeted_stream_must_report_its_usage if {
	fresh := {"minute": {"requests": 0, "tokens": 0}, "day": {"requests": 0, "tokens": 0}}
	d := authz.decision with input as llm_stream(false)
	d.http_status == 400
	d.body.error == "usage_required"
	ok := authz.decision with input as llm_stream(true)
	ok.allowed
	unbudgeted := authz.decision with input as object.union(llm_stream(false), {"usage": usage(fresh, [rate])})
	unbudgeted.allowed
}

test_an_llm_client_reads_the_429_in_its_provider_shape if {
	counts := {"minute": {"requests": 1, "tokens": 40}, "day": {"requests": 3, "tokens": 120}}
	base := object.union(req(alice, "GET", ["demo", "items"]), {"usage": usage(counts, [token_budget])})
	openai := authz.decision with input as object.union(base, {"protocol": {"name": "llm", "provider": "openai"}})
	openai.http_status == 429
	openai.body.error.type == "budget_exhausted"
	openai.body.error.message == "daily-tokens: 100 tokens per day for this user (alice)"
	claude := authz.decision with input as object.union(base, {"protocol": {"name": "llm", "provider": "anthropic"}})
	claude.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "daily-tokens: 100 tokens per day for this user (alice)"}}
}
