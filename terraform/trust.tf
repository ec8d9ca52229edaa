# The server trust-store update (docs/protocol.md v1.2, cloud rules C1-C6): one execution of
# this state machine per device and push, started by `rotor trust push`. Its functions
# (trust-request, trust-record) and the rules that carry trust_ack / trust_err to
# device-message come from the wiring like every other function and rule (lambda.tf, iot.tf);
# its state machine and role are set up with the others from the wiring's trustStateMachine
# (stepfunctions.tf); this file adds its settings.

locals {
  # The wiring's trust settings (settings of locals.tf).
  trust_settings = {
    trustAckTimeoutSeconds    = var.trust_ack_timeout_seconds
    trustRequestRetries       = var.trust_request_retries
    trustRetryIntervalSeconds = var.trust_retry_interval_seconds
  }

  # Its state machine is set up with the others (stepfunctions.tf); its ARN keeps the name
  # other files and branches refer to it by.
  trust_state_machine_arn = local.state_machine_arns[local.wiring.trustStateMachine.name]
}

output "trust_state_machine_arn" {
  description = "ARN of the trust-update state machine (protocol v1.2): `rotor trust push` starts one execution per device on it."
  value       = aws_sfn_state_machine.state_machine[local.wiring.trustStateMachine.name].arn
}
