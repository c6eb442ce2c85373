package chaperone.examples.llm_test

import rego.v1

import data.chaperone.examples.llm

p(model, tokens) := {"protocol": {"name": "llm", "model": model, "max_tokens": tokens}}

test_allowed_model_within_budget if llm.decision.allowed with input as p("gpt-4o-mini", 512)

test_model_not_allowed if {
	d := llm.decision with input as p("gpt-5-max", 512)
	d.reason == "model gpt-5-max is not allowed"
}

test_over_budget if {
	d := llm.decision with input as p("gpt-4o-mini", 100000)
	not d.allowed
}

test_unset_budget_is_refused if {
	d := llm.decision with input as p("claude-3-5-haiku", null)
	not d.allowed
}

test_not_llm if {
	d := llm.decision with input as {"protocol": {"name": "mcp"}}
	not d.allowed
}
