# The signer settings (signer.tf): what reaches issue-certificate, what its role may do with
# Private CA, the CA check in the scheduled audit, and the bad values refused at plan time.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  ca_arn = "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10"
}

run "aws_iot_signer_by_default" {
  command = apply

  assert {
    condition = (
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_SIGNER == "aws-iot" &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_PCA_ARN == "" &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_IOT_CA_REGISTRATION == "DEFAULT"
    )
    error_message = "By default issue-certificate must sign with aws-iot and name no Private CA."
  }

  assert {
    condition = alltrue(flatten([
      for statement in jsondecode(local.function_policies["issue-certificate"]).Statement : [
        for action in statement.Action : !startswith(action, "acm-pca:")
      ]
    ]))
    error_message = "Without a Private CA, issue-certificate may not call Private CA at all."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(local.function_policies["issue-certificate"]).Statement :
      contains(statement.Action, "iot:CreateCertificateFromCsr") && statement.Resource == ["*"]
    ])
    error_message = "aws-iot needs iot:CreateCertificateFromCsr, which has no resource-level permissions."
  }

  assert {
    condition = (
      contains(jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.ScheduledAudit.Properties.TargetCheckNames, "CA_CERTIFICATE_EXPIRING_CHECK") &&
      jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.AuditConfiguration.Properties.AuditCheckConfigurations.CaCertificateExpiringCheck.Enabled == true &&
      aws_lambda_function.function["start-rotations"].environment[0].variables.AUDIT_CHECKS == "DEVICE_CERTIFICATE_EXPIRING_CHECK,DEVICE_CERTIFICATE_AGE_CHECK"
    )
    error_message = "The scheduled audit must run CA_CERTIFICATE_EXPIRING_CHECK, without start-rotations treating it as a device check."
  }
}

run "private_ca_signer" {
  command = apply

  variables {
    signer                       = "private-ca"
    private_ca_arn               = var.ca_arn
    private_ca_validity_days     = 90
    private_ca_template_arn      = "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1"
    private_ca_signing_algorithm = "SHA384WITHECDSA"
    iot_ca_registration_mode     = "SNI_ONLY"
  }

  assert {
    condition = (
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_SIGNER == "private-ca" &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_PCA_ARN == var.ca_arn &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_PCA_VALIDITY_DAYS == "90" &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_PCA_TEMPLATE_ARN == "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1" &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_PCA_SIGNING_ALGORITHM == "SHA384WITHECDSA" &&
      aws_lambda_function.function["issue-certificate"].environment[0].variables.ROTOR_IOT_CA_REGISTRATION == "SNI_ONLY"
    )
    error_message = "The signer settings did not reach issue-certificate's environment."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(local.function_policies["issue-certificate"]).Statement :
      statement.Sid == "PrivateCa" &&
      toset(statement.Action) == toset(["acm-pca:DescribeCertificateAuthority", "acm-pca:GetCertificate", "acm-pca:IssueCertificate"]) &&
      statement.Resource == [var.ca_arn]
    ])
    error_message = "issue-certificate must be allowed to issue, get and describe on the configured CA's ARN only."
  }

  assert {
    condition = toset(flatten([
      for statement in jsondecode(local.function_policies["issue-certificate"]).Statement : statement.Action
    ])) == toset(keys(local.wiring.functions["issue-certificate"].permissions))
    error_message = "With a Private CA, issue-certificate's role grants exactly the wiring's permissions."
  }

  assert {
    condition = alltrue(flatten([
      for name, doc in local.function_policies : [
        for statement in jsondecode(doc).Statement : [
          for action in statement.Action : !startswith(action, "acm-pca:") || contains(["issue-certificate", "ca-verify-new"], name)
        ]
      ]
    ]))
    error_message = "Only issue-certificate and the CA rollover's test issue (ca-verify-new) may call Private CA."
  }

  assert {
    condition = anytrue([
      for statement in jsondecode(local.function_policies["issue-certificate"]).Statement :
      contains(statement.Action, "iot:RegisterCertificate") && contains(statement.Action, "iot:RegisterCertificateWithoutCA") && statement.Resource == ["arn:aws:iot:eu-west-1:123456789012:cert/*"]
    ])
    error_message = "issue-certificate registers device certificates: RegisterCertificate(WithoutCA) on certificates."
  }
}

run "ca_check_can_be_left_out" {
  command = apply

  variables {
    audit_ca_certificate_expiring_check = false
  }

  assert {
    condition     = !contains(jsondecode(aws_cloudformation_stack.device_defender[0].template_body).Resources.ScheduledAudit.Properties.TargetCheckNames, "CA_CERTIFICATE_EXPIRING_CHECK")
    error_message = "audit_ca_certificate_expiring_check = false must leave the CA check out of the audit."
  }
}

run "rejects_unknown_signer" {
  command = plan

  variables {
    signer = "acm"
  }

  expect_failures = [var.signer]
}

run "rejects_private_ca_without_arn" {
  command = plan

  variables {
    signer = "private-ca"
  }

  expect_failures = [var.private_ca_arn]
}

run "rejects_an_arn_that_is_no_private_ca" {
  command = plan

  variables {
    signer         = "private-ca"
    private_ca_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10"
  }

  expect_failures = [var.private_ca_arn]
}

run "rejects_a_validity_the_expiring_check_would_flag" {
  command = plan

  variables {
    signer                   = "private-ca"
    private_ca_arn           = var.ca_arn
    private_ca_validity_days = 30
  }

  expect_failures = [var.private_ca_validity_days]
}

run "rejects_unknown_registration_mode" {
  command = plan

  variables {
    iot_ca_registration_mode = "sni-only"
  }

  expect_failures = [var.iot_ca_registration_mode]
}

run "rejects_unknown_signing_algorithm" {
  command = plan

  variables {
    private_ca_signing_algorithm = "SHA1WITHRSA"
  }

  expect_failures = [var.private_ca_signing_algorithm]
}
