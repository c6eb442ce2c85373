# Example: LLM API egress. A model allow-list and a token budget per request, on input.protocol
# (a route declared with `protocol: llm`).
package chaperone.examples.llm

import rego.v1

allowed_models := {"gpt-4o-mini", "claude-3-5-haiku"}

max_tokens_budget := 2048

default decision := {"allowed": false, "http_status": 403, "reason": "not an allowed LLM request"}

decision := {"allowed": true, "reason": sprintf("model %s within budget", [input.protocol.model])} if {
	input.protocol.name == "llm"
	input.protocol.model in allowed_models
	within_budget
}

decision := {"allowed": false, "http_status": 403, "reason": sprintf("model %s is not allowed", [input.protocol.model])} if {
	input.protocol.name == "llm"
	not input.protocol.model in allowed_models
}

decision := {"allowed": false, "http_status": 403, "reason": "max_tokens over the budget (or unset)"} if {
	input.protocol.name == "llm"
	input.protocol.model in allowed_models
	not within_budget
}

within_budget if {
	is_number(input.protocol.max_tokens)
	input.protocol.max_tokens <= max_tokens_budget
}
