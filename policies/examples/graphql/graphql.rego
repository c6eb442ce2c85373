# Example: GraphQL egress. Queries only, and never the fields that expose secrets.
package chaperone.examples.graphql

import rego.v1

secret_fields := {"secrets", "deployKeys"}

default decision := {"allowed": false, "http_status": 403, "reason": "not a GraphQL query"}

decision := {"allowed": true, "reason": "read-only query"} if {
	input.protocol.name == "graphql"
	input.protocol.operation_type == "query"
	count({f | some f in input.protocol.fields; f in secret_fields}) == 0
}

decision := {"allowed": false, "http_status": 403, "reason": sprintf("GraphQL %s operations are not allowed", [input.protocol.operation_type])} if {
	input.protocol.name == "graphql"
	input.protocol.operation_type != "query"
}

decision := {"allowed": false, "http_status": 403, "reason": "the query reads a secret field"} if {
	input.protocol.name == "graphql"
	input.protocol.operation_type == "query"
	some f in input.protocol.fields
	f in secret_fields
}
