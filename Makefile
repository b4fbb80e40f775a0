# Developer shortcuts; CI uses .ci/run.
.PHONY: build annotate test bench lint clean

build:
	python setup.py build_ext --inplace -q

# cython -a: HTML next to each .pyx; hot loops should show white (pure C).
annotate:
	ICE_ANNOTATE=1 python setup.py build_ext --inplace -q --force
	@find ice -name '*.html'

test: build
	pytest -q

bench: build
	mkdir -p bench/results
	pytest bench -q --benchmark-json=bench/results/latest.json
	python bench/compare.py bench/results/latest.json

lint:
	ruff check .
	mypy --strict ice

clean:
	rm -rf build
	find ice \( -name '*.so' -o -name '*.html' -o -name '_*.c' ! -name '_sha.c' \) -delete
