"""FantasyWorld Studio: the Gradio + viser app (UI only; all model logic lives in ``fantasy_world``)."""
