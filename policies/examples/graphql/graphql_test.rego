package chaperone.examples.graphql_test

import rego.v1

import data.chaperone.examples.graphql as gql

p(type, fields) := {"protocol": {"name": "graphql", "operation_type": type, "fields": fields}}

test_query_allowed if gql.decision.allowed with input as p("query", ["viewer", "viewer.login"])

test_mutation_denied if {
	d := gql.decision with input as p("mutation", ["deleteRepo"])
	d.reason == "GraphQL mutation operations are not allowed"
}

test_secret_field_denied_at_any_depth if {
	d := gql.decision with input as p("query", ["viewer", "viewer.repository", "viewer.repository.deployKeys", "viewer.repository.deployKeys.id"])
	not d.allowed
	d.reason == "the query reads a secret field (viewer.repository.deployKeys)"
	top := gql.decision with input as p("query", ["secrets"])
	not top.allowed
}

test_field_named_like_a_secret_prefix_is_not_secret if {
	d := gql.decision with input as p("query", ["viewer", "viewer.deployKeysCount"])
	d.allowed
}

test_not_graphql if {
	d := gql.decision with input as {"protocol": {"name": "llm"}}
	not d.allowed
}
