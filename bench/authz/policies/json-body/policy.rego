# Bench case "json-body": a rule on fields of the JSON request body (parsed_body), the way an egress
# policy limits which model an agent may call and how large a completion it may ask for.
package envoy.authz

default allow := false

allowed_models := {"gpt-4o-mini", "claude-haiku-4-5", "mistral-small"}

allow if {
	input.attributes.request.http.method == "POST"
	input.parsed_path == ["v1", "chat", "completions"]
	input.parsed_body.model in allowed_models
	input.parsed_body.max_tokens <= 2048
	not input.parsed_body.stream
}
