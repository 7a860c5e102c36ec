"""One folder per noun, one module per verb; each verb parses into Options and calls run()."""
