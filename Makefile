# Two commands on a fresh machine: `make book` builds the book from cached results, `make test` runs the tests.
.PHONY: book test setup
setup:
	bash scripts/setup.sh
book: setup
	bash scripts/build_book.sh
test: setup
	bash scripts/test.sh
