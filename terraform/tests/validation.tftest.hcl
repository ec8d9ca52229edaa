# Bad input is refused at plan time with the variable's own message, before anything is created.

mock_provider "aws" {
  source = "./tests/mocks"
}

run "rejects_unknown_retire_mode" {
  command = plan

  variables {
    retire_mode = "archive"
  }

  expect_failures = [var.retire_mode]
}

run "rejects_unknown_audit_check" {
  command = plan

  variables {
    audit_checks = ["DEVICE_CERTIFICATE_EXPIRING_CHECK", "CA_CERTIFICATE_EXPIRING_CHECK"]
  }

  expect_failures = [var.audit_checks]
}

run "rejects_empty_audit_checks" {
  command = plan

  variables {
    audit_checks = []
  }

  expect_failures = [var.audit_checks]
}

run "rejects_unknown_audit_frequency" {
  command = plan

  variables {
    audit_frequency = "HOURLY"
  }

  expect_failures = [var.audit_frequency]
}

run "rejects_log_retention_cloudwatch_refuses" {
  command = plan

  variables {
    log_retention_days = 42
  }

  expect_failures = [var.log_retention_days]
}

run "rejects_unknown_sfn_log_level" {
  command = plan

  variables {
    sfn_log_level = "DEBUG"
  }

  expect_failures = [var.sfn_log_level]
}

run "rejects_fractional_timeout" {
  command = plan

  variables {
    csr_timeout_seconds = 90.5
  }

  expect_failures = [var.csr_timeout_seconds]
}

run "rejects_cert_age_threshold_out_of_bounds" {
  command = plan

  variables {
    cert_age_threshold_days = 10
  }

  expect_failures = [var.cert_age_threshold_days]
}

run "rejects_bad_escalation_email" {
  command = plan

  variables {
    escalation_emails = ["ops@example.com", "not-an-address"]
  }

  expect_failures = [var.escalation_emails]
}

run "rejects_name_prefix_with_underscore" {
  command = plan

  variables {
    name_prefix = "rotor_prod"
  }

  expect_failures = [var.name_prefix]
}
