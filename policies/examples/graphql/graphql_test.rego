package chaperone.examples.graphql_test

import rego.v1

import data.chaperone.examples.graphql as gql

p(type, fields) := {"protocol": {"name": "graphql", "operation_type": type, "fields": fields}}

test_query_allowed if gql.decision.allowed with input as p("query", ["viewer"])

test_mutation_denied if {
	d := gql.decision with input as p("mutation", ["deleteRepo"])
	d.reason == "GraphQL mutation operations are not allowed"
}

test_secret_field_denied if {
	d := gql.decision with input as p("query", ["viewer", "secrets"])
	not d.allowed
	d.reason == "the query reads a secret field"
}

test_not_graphql if {
	d := gql.decision with input as {"protocol": {"name": "llm"}}
	not d.allowed
}
