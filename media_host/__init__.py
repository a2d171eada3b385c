"""Media plane: ACS media WebSockets bridged to Azure OpenAI Realtime sessions."""
