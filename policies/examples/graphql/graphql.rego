# Example: GraphQL egress. Queries only, and never a field that exposes secrets — at any depth, under
# any alias, through any fragment: input.protocol.fields lists every selected field as a full path
# (`viewer.repository.deployKeys`) and field_names every name in it.
package chaperone.examples.graphql

import rego.v1

secret_fields := {"secrets", "deployKeys"}

# The selected paths that end in a secret field.
secret_paths contains path if {
	some path in input.protocol.fields
	parts := split(path, ".")
	parts[count(parts) - 1] in secret_fields
}

default decision := {"allowed": false, "http_status": 403, "reason": "not a GraphQL query"}

decision := {"allowed": true, "reason": "read-only query"} if {
	input.protocol.name == "graphql"
	input.protocol.operation_type == "query"
	count(secret_paths) == 0
}

decision := {"allowed": false, "http_status": 403, "reason": sprintf("GraphQL %s operations are not allowed", [input.protocol.operation_type])} if {
	input.protocol.name == "graphql"
	input.protocol.operation_type != "query"
}

decision := {"allowed": false, "http_status": 403, "reason": sprintf("the query reads a secret field (%s)", [concat(", ", sort(secret_paths))])} if {
	input.protocol.name == "graphql"
	input.protocol.operation_type == "query"
	count(secret_paths) > 0
}
