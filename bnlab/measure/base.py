"""The protocol every measurement probe follows (see ``bnlab.measure``)."""


class Probe:
    """Base protocol: a probe runs at step 0, every ``every`` steps, and at the last step."""

    every = 0

    def due(self, step: int, total: int) -> bool:
        return self.every > 0 and (step % self.every == 0 or step + 1 == total)

    def before_forward(self, step, model):
        pass

    def after_backward(self, step, model, x, y, loss):
        pass

    def after_step(self, step, model, x, y):
        pass

    def state(self):
        return self.__dict__.get("records")

    def load_state(self, state):
        self.records = state


    def truncate(self, done: int) -> None:
        """Forget records of steps >= ``done`` (a step interrupted half-way is measured again on resume)."""
        r = self.records
        for step_key in [k for k in r if k.endswith("step")]:
            keep = [i for i, s in enumerate(r[step_key]) if s < done]
            group = [step_key] + (["samples"] if step_key == "sample_step" else
                                  [k for k in r if not k.endswith("step") and k != "samples"])
            for k in group:
                r[k] = [r[k][i] for i in keep]
