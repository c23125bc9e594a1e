"""Every model call: the `LLM` protocol (`types`), the client and its transports
(`client`, `litellm`, `http`), cache, rate limits, retries, structured output, accounting."""
