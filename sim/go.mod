module github.com/cairn-db/cairn/sim

go 1.26.0

require (
	github.com/cairn-db/cairn/linearizability v0.0.0
	github.com/cairn-db/cairn/node v0.0.0
)

replace (
	github.com/cairn-db/cairn/linearizability => ../linearizability
	github.com/cairn-db/cairn/node => ../node
)
