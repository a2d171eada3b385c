"""Control plane: Azure Functions HTTP triggers that answer, follow and place calls."""
