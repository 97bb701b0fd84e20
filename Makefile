# The two commands of the README's quick start. Both install what is missing first.
.PHONY: up test install bench

install:
	@./scripts/bootstrap

up: install
	.venv/bin/slipstream up

test: install
	./scripts/test

bench: install
	./scripts/bench
