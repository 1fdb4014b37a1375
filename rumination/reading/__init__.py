"""Getting readable text out of pages and files: safe fetching, extraction, documents, the HTTP
cache, prefetch, untrusted-text handling."""
