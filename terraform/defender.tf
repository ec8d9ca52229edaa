# Device Defender: the audit whose completion notification starts rotations. The account's
# audit configuration is a per-account singleton with no resource in the aws provider, so it
# lives in a CloudFormation stack (AWS::IoT::AccountAuditConfiguration + ScheduledAudit),
# created only when this module is meant to own it.

locals {
  # Audit check name (API) → its entry in AuditCheckConfigurations (CloudFormation).
  audit_check_entries = {
    DEVICE_CERTIFICATE_EXPIRING_CHECK = {
      property      = "DeviceCertificateExpiringCheck"
      configuration = { Enabled = true }
    }
    DEVICE_CERTIFICATE_AGE_CHECK = {
      property      = "DeviceCertificateAgeCheck"
      configuration = { Enabled = true, Configuration = { CertAgeThresholdInDays = tostring(var.cert_age_threshold_days) } }
    }
  }

  audit_check_configurations = merge({
    for check, entry in local.audit_check_entries : entry.property => entry.configuration if contains(var.audit_checks, check)
  }, local.ca_audit_check_configurations)

  scheduled_audit_properties = merge(
    {
      ScheduledAuditName = "${var.name_prefix}-certificate-audit"
      Frequency          = var.audit_frequency
      TargetCheckNames   = local.audit_target_check_names
    },
    contains(["WEEKLY", "BIWEEKLY"], var.audit_frequency) ? { DayOfWeek = var.audit_day_of_week } : {},
    var.audit_frequency == "MONTHLY" ? { DayOfMonth = tostring(var.audit_day_of_month) } : {},
  )

  audit_template = var.manage_audit_configuration ? jsonencode({
    AWSTemplateFormatVersion = "2010-09-09"
    Description              = "Rotor: Device Defender audit of device certificates, notifying ${aws_sns_topic.audit.arn}."
    Resources = {
      AuditConfiguration = {
        Type = "AWS::IoT::AccountAuditConfiguration"
        Properties = {
          AccountId                = local.account
          RoleArn                  = aws_iam_role.audit[0].arn
          AuditCheckConfigurations = local.audit_check_configurations
          AuditNotificationTargetConfigurations = {
            Sns = {
              TargetArn = aws_sns_topic.audit.arn
              RoleArn   = aws_iam_role.audit_notifications.arn
              Enabled   = true
            }
          }
        }
      }
      ScheduledAudit = {
        Type       = "AWS::IoT::ScheduledAudit"
        DependsOn  = "AuditConfiguration" # the checks must be enabled before a schedule names them
        Properties = local.scheduled_audit_properties
      }
    }
  }) : null
}

resource "aws_cloudformation_stack" "device_defender" {
  count = var.manage_audit_configuration ? 1 : 0

  name          = "${var.name_prefix}-device-defender-audit"
  template_body = local.audit_template
  tags          = local.tags

  depends_on = [
    aws_iam_role_policy_attachment.audit,
    aws_iam_role_policy.audit_notifications,
    aws_sns_topic_policy.audit,
  ]
}
