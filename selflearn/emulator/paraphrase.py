"""Optional: rewrite the planned turns in the persona's voice with an LLM (any OpenAI-compatible
endpoint, the one MaaS is configured with). Offline the templates are used as they are.

A rewrite must keep the phrase the scoring depends on (a fact's expected answer); a rewrite that
drops it, an empty or overlong one, or any LLM error falls back to the template text, so
paraphrasing can change how a user sounds but never what the emulator can score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import openai

from selflearn.emulator.seeds import Persona

log = logging.getLogger(__name__)
STAGE = "emulator"  # sent as X-MaaS-Stage, like MaaS's own calls, so logs and fakes can tell
SYSTEM = (
    "You rewrite one chat message a user is about to send to an assistant, in the user's own "
    "voice. Keep its meaning and every fact in it. Reply with the rewritten message only."
)


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None
    api_key: str
    model: str
    timeout_s: float = 30.0


class Paraphraser:
    def __init__(self, config: LLMConfig) -> None:
        self.model = config.model
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_s,
            max_retries=1,
            default_headers={"X-MaaS-Stage": STAGE},
        )
        self.rewritten = 0

    def _prompt(self, persona: Persona, text: str, keep: str | None) -> str:
        must = f'It must contain the exact words "{keep}".\n' if keep else ""
        return (
            f"User: {persona.name} — {persona.style}; {persona.register} register, "
            f"verbosity {persona.verbosity} of 3.\n{must}Message: {text}"
        )

    async def __call__(self, persona: Persona, text: str, keep: str | None) -> str:
        try:
            reply = await self.client.chat.completions.create(
                model=self.model,
                temperature=0,
                max_tokens=300,
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": self._prompt(persona, text, keep)},
                ],
            )
        except openai.OpenAIError as exc:  # the template is a fine message too
            log.warning("emulator: paraphrase failed (%s); using the template", exc)
            return text
        return self._checked(text, (reply.choices[0].message.content or "").strip(), keep)

    def _checked(self, text: str, out: str, keep: str | None) -> str:
        if not out or len(out) > 4 * len(text) + 200:
            return text
        if keep and keep.lower() not in out.lower():
            return text
        self.rewritten += 1
        return out

    async def close(self) -> None:
        await self.client.close()
