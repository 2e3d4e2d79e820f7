"""Local HTTP servers that speak the APIs of services tests cannot reach (OpenAI, AssemblyAI)."""
