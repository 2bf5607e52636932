"""The pseudo-overlap stage: prompts, LLM requests, parsing the guesses, grounding them to items."""
