"""autoresearch-lab's harness package: only `backend` is provided, as an alias of arl's backend API."""
