"""Code that runs *inside* the sandbox: the fork server, the test runners, the seccomp filter.

Standard library only, and no import from the rest of `synth`: this folder is bind-mounted
read-only into the jail as the package `synth_runtime`. The parent imports `encode` and
`rewrite` from here too, so the rules that judge a run are the same code on both sides."""
