# The CA rollover (ca-rollover.tf): its state machine rendered from the wiring, its role scoped
# to its own functions and the escalation topic, its settings, the successor CA granted only
# when set, and bad values refused at plan time.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  ca_arn      = "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10"
  next_ca_arn = "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/1a2b3c4d-5b7d-4e2a-9c61-2d8f4b7a6e10"
}

run "rollover_state_machine" {
  command = apply

  assert {
    condition = (
      jsondecode(aws_sfn_state_machine.state_machine["ca-rollover"].definition).StartAt == "Verify new CA" &&
      jsondecode(aws_sfn_state_machine.state_machine["ca-rollover"].definition).States["Wait for rotations"].Seconds == 300 &&
      jsondecode(aws_sfn_state_machine.state_machine["ca-rollover"].definition).States["Move devices"].Parameters.Payload.maxWaitSeconds == 172800 &&
      jsondecode(aws_sfn_state_machine.state_machine["ca-rollover"].definition).States["Move devices"].Parameters.FunctionName == local.function_arns["ca-move-devices"]
    )
    error_message = "The rollover state machine must be rendered from the wiring, numbers as numbers, functions by ARN."
  }

  assert {
    condition = (
      length(jsondecode(local.state_machine_policies["ca-rollover"]).Statement) == 2 &&
      alltrue([for s in jsondecode(local.state_machine_policies["ca-rollover"]).Statement : s.Action == ["lambda:InvokeFunction"] ? toset(s.Resource) == toset([for n in ["ca-verify-new", "ca-switch-issuing", "ca-move-devices", "ca-deactivate-old"] : local.function_arns[n]]) : s.Action == ["sns:Publish"] && s.Resource == [aws_sns_topic.escalation.arn]])
    )
    error_message = "The rollover's role may invoke only its four functions and publish only to the escalation topic."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(local.function_policies["ca-deactivate-old"]).Statement :
      contains(s.Action, "iot:UpdateCACertificate") && s.Resource == ["arn:aws:iot:eu-west-1:123456789012:cacert/*"]
    ])
    error_message = "Only CA certificates may be updated by ca-deactivate-old."
  }

  assert {
    condition     = length(aws_iam_role_policy.next_private_ca) == 0
    error_message = "Without next_private_ca_arn no function is granted a second CA."
  }
}

run "successor_ca_granted_when_set" {
  command = apply

  variables {
    signer                       = "private-ca"
    private_ca_arn               = var.ca_arn
    next_private_ca_arn          = var.next_ca_arn
    ca_rollover_poll_seconds     = 60
    ca_rollover_max_wait_seconds = 3600
  }

  assert {
    condition = (
      toset(keys(aws_iam_role_policy.next_private_ca)) == toset(["issue-certificate", "ca-verify-new"]) &&
      jsondecode(aws_iam_role_policy.next_private_ca["issue-certificate"].policy).Statement[0].Resource == [var.next_ca_arn] &&
      contains(jsondecode(aws_iam_role_policy.next_private_ca["issue-certificate"].policy).Statement[0].Action, "acm-pca:IssueCertificate")
    )
    error_message = "With a successor CA, issue-certificate and ca-verify-new may sign with it, and with nothing else."
  }

  assert {
    condition = (
      jsondecode(aws_sfn_state_machine.state_machine["ca-rollover"].definition).States["Wait for rotations"].Seconds == 60 &&
      jsondecode(aws_sfn_state_machine.state_machine["ca-rollover"].definition).States["Move devices"].Parameters.Payload.maxWaitSeconds == 3600 &&
      aws_lambda_function.function["ca-switch-issuing"].environment[0].variables.ROTOR_SIGNER == "private-ca"
    )
    error_message = "The rollover settings must reach its state machine, and the signer its switch."
  }
}

run "audit_finding_starts_the_rollover" {
  command = apply

  assert {
    condition = (
      aws_iam_role_policy.start_rotations_ca_rollover.role == aws_iam_role.function["start-rotations"].id &&
      jsondecode(aws_iam_role_policy.start_rotations_ca_rollover.policy).Statement[0].Action == ["states:StartExecution"] &&
      jsondecode(aws_iam_role_policy.start_rotations_ca_rollover.policy).Statement[0].Resource == [local.ca_rollover_state_machine_arn] &&
      length(jsondecode(aws_iam_role_policy.start_rotations_ca_rollover.policy).Statement) == 1
    )
    error_message = "start-rotations may start the CA rollover state machine, and nothing else is added to its role."
  }

  assert {
    condition = (
      aws_lambda_function.function["start-rotations"].environment[0].variables.CA_ROLLOVER_STATE_MACHINE_ARN == local.ca_rollover_state_machine_arn &&
      aws_lambda_function.function["start-rotations"].environment[0].variables.NEXT_PRIVATE_CA_ARN == ""
    )
    error_message = "start-rotations must know the rollover state machine, and without next_private_ca_arn no successor."
  }
}

run "audit_finding_rolls_over_to_the_successor" {
  command = apply

  variables {
    signer              = "private-ca"
    private_ca_arn      = var.ca_arn
    next_private_ca_arn = var.next_ca_arn
  }

  assert {
    condition     = aws_lambda_function.function["start-rotations"].environment[0].variables.NEXT_PRIVATE_CA_ARN == var.next_ca_arn
    error_message = "next_private_ca_arn must reach start-rotations as the successor of an expiring CA."
  }
}

run "rejects_bad_next_private_ca_arn" {
  command = plan

  variables {
    next_private_ca_arn = "CA-2"
  }

  expect_failures = [var.next_private_ca_arn]
}

run "rejects_bad_poll_seconds" {
  command = plan

  variables {
    ca_rollover_poll_seconds = 1
  }

  expect_failures = [var.ca_rollover_poll_seconds]
}
