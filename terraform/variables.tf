# Defaults of the settings that the functions and the state machine share (csr_*, ack_*,
# retire_mode, audit_checks, log_level, history_retention_days) are the wiring's defaults
# (wiring/wiring.json "settings"). Terraform only allows literals here, so they are
# repeated, and tests/render.tftest.hcl fails when one drifts from the wiring.

variable "name_prefix" {
  description = "Prefix of every resource name (functions, roles, table, topics, rules, state machine)."
  type        = string
  default     = "rotor"

  validation {
    # Lambda, IAM role and log group names have length limits; 24 leaves room for the longest suffix ("-deliver-certificate").
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,23}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and hold 1-24 letters, digits or hyphens."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "artifacts_dir" {
  description = "Folder holding the function bundles NAME.zip built by `make build`. Null means ../dist/functions next to this module."
  type        = string
  default     = null
}

variable "csr_timeout_seconds" {
  description = "How long one csr_req waits for the device's csr_res before it is sent again."
  type        = number
  default     = 1800

  validation {
    condition     = var.csr_timeout_seconds >= 60 && var.csr_timeout_seconds <= 2592000 && floor(var.csr_timeout_seconds) == var.csr_timeout_seconds
    error_message = "csr_timeout_seconds must be a whole number from 60 to 2592000 (30 days)."
  }
}

variable "csr_request_retries" {
  description = "How many times csr_req is sent again (with exponential backoff) before the rotation fails."
  type        = number
  default     = 3

  validation {
    condition     = var.csr_request_retries >= 0 && var.csr_request_retries <= 20 && floor(var.csr_request_retries) == var.csr_request_retries
    error_message = "csr_request_retries must be a whole number from 0 to 20."
  }
}

variable "csr_retry_interval_seconds" {
  description = "Pause before the first re-sent csr_req; doubles for each later one."
  type        = number
  default     = 300

  validation {
    condition     = var.csr_retry_interval_seconds >= 1 && var.csr_retry_interval_seconds <= 86400 && floor(var.csr_retry_interval_seconds) == var.csr_retry_interval_seconds
    error_message = "csr_retry_interval_seconds must be a whole number from 1 to 86400."
  }
}

variable "ack_timeout_seconds" {
  description = "How long the new certificate waits for the device's crt_ack (made over the new certificate) before it is rolled back."
  type        = number
  default     = 900

  validation {
    condition     = var.ack_timeout_seconds >= 60 && var.ack_timeout_seconds <= 604800 && floor(var.ack_timeout_seconds) == var.ack_timeout_seconds
    error_message = "ack_timeout_seconds must be a whole number from 60 to 604800 (7 days)."
  }
}

variable "retire_mode" {
  description = "What the old certificate becomes after a rotation succeeds: delete, or keep-inactive (INACTIVE and detached, kept for forensics)."
  type        = string
  default     = "delete"

  validation {
    condition     = contains(["delete", "keep-inactive"], var.retire_mode)
    error_message = "retire_mode must be delete or keep-inactive."
  }
}

variable "audit_checks" {
  description = "The Device Defender checks whose findings start rotations; they are enabled and scheduled when manage_audit_configuration is true."
  type        = list(string)
  default     = ["DEVICE_CERTIFICATE_EXPIRING_CHECK", "DEVICE_CERTIFICATE_AGE_CHECK"]

  validation {
    condition = length(var.audit_checks) > 0 && length(var.audit_checks) == length(distinct(var.audit_checks)) && alltrue([
      for check in var.audit_checks : contains(["DEVICE_CERTIFICATE_EXPIRING_CHECK", "DEVICE_CERTIFICATE_AGE_CHECK"], check)
    ])
    error_message = "audit_checks must be a non-empty list without repeats of DEVICE_CERTIFICATE_EXPIRING_CHECK and/or DEVICE_CERTIFICATE_AGE_CHECK."
  }
}

variable "cert_age_threshold_days" {
  description = "DEVICE_CERTIFICATE_AGE_CHECK reports a certificate that has been active this many days or more."
  type        = number
  default     = 365

  validation {
    # The bounds Device Defender accepts.
    condition     = var.cert_age_threshold_days >= 30 && var.cert_age_threshold_days <= 3652 && floor(var.cert_age_threshold_days) == var.cert_age_threshold_days
    error_message = "cert_age_threshold_days must be a whole number from 30 to 3652."
  }
}

variable "audit_frequency" {
  description = "How often the scheduled Device Defender audit runs."
  type        = string
  default     = "DAILY"

  validation {
    condition     = contains(["DAILY", "WEEKLY", "BIWEEKLY", "MONTHLY"], var.audit_frequency)
    error_message = "audit_frequency must be DAILY, WEEKLY, BIWEEKLY or MONTHLY."
  }
}

variable "audit_day_of_week" {
  description = "Day a WEEKLY or BIWEEKLY audit runs (ignored otherwise)."
  type        = string
  default     = "MON"

  validation {
    condition     = contains(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], var.audit_day_of_week)
    error_message = "audit_day_of_week must be one of SUN, MON, TUE, WED, THU, FRI, SAT."
  }
}

variable "audit_day_of_month" {
  description = "Day of the month (1-31; a shorter month runs on its last day) a MONTHLY audit runs (ignored otherwise)."
  type        = number
  default     = 1

  validation {
    condition     = var.audit_day_of_month >= 1 && var.audit_day_of_month <= 31 && floor(var.audit_day_of_month) == var.audit_day_of_month
    error_message = "audit_day_of_month must be a whole number from 1 to 31."
  }
}

variable "manage_audit_configuration" {
  description = "Whether this module owns the account's Device Defender audit configuration and scheduled audit. It is one per account and region: set false when another stack manages it, and point its SNS notifications at the audit_topic_arn output."
  type        = bool
  default     = true
}

variable "log_level" {
  description = "Log level of the functions (Powertools logger)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "CRITICAL", "SILENT"], var.log_level)
    error_message = "log_level must be TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL or SILENT."
  }
}

variable "sfn_log_level" {
  description = "What the state machine logs to CloudWatch Logs: every state transition (ALL), or only failures (ERROR, FATAL), or nothing (OFF)."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.sfn_log_level)
    error_message = "sfn_log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "sfn_log_include_execution_data" {
  description = "Whether the state machine's logs carry each state's input and output. They hold task tokens (whoever reads one can complete a waiting step) and CSRs, so the default is false; turn it on only to debug, for a short time."
  type        = bool
  default     = false
}

variable "async_maximum_retry_attempts" {
  description = "How many times Lambda retries a failed asynchronous invocation (device messages, audit notifications) before it goes to the function's dead-letter queue."
  type        = number
  default     = 2

  validation {
    condition     = contains([0, 1, 2], var.async_maximum_retry_attempts)
    error_message = "async_maximum_retry_attempts must be 0, 1 or 2 (Lambda's limits)."
  }
}

variable "async_maximum_event_age_seconds" {
  description = "How long Lambda keeps trying an asynchronous event (retries, and waiting out throttling) before it goes to the dead-letter queue."
  type        = number
  default     = 3600

  validation {
    condition     = var.async_maximum_event_age_seconds >= 60 && var.async_maximum_event_age_seconds <= 21600 && floor(var.async_maximum_event_age_seconds) == var.async_maximum_event_age_seconds
    error_message = "async_maximum_event_age_seconds must be a whole number from 60 to 21600 (Lambda's limits)."
  }
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (dead letters waiting, an escalation that could not be sent); each must confirm the subscription."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for address in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", address))])
    error_message = "alarm_emails must hold e-mail addresses only."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions', the state machine's and the rule errors' log groups (0 = never expire)."
  type        = number
  default     = 90

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts: 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "history_retention_days" {
  description = "How long the history item of each finished rotation is kept (DynamoDB TTL)."
  type        = number
  default     = 400

  validation {
    condition     = var.history_retention_days >= 1 && var.history_retention_days <= 3650 && floor(var.history_retention_days) == var.history_retention_days
    error_message = "history_retention_days must be a whole number from 1 to 3650."
  }
}

variable "escalation_emails" {
  description = "E-mail addresses subscribed to the escalation topic (each must confirm the subscription)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for address in var.escalation_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", address))])
    error_message = "escalation_emails must hold e-mail addresses only."
  }
}

variable "sns_kms_key_arn" {
  description = "Customer managed KMS key ARN that encrypts both SNS topics. Null means the AWS managed key alias/aws/sns."
  type        = string
  default     = null

  validation {
    condition     = var.sns_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]+$", var.sns_kms_key_arn))
    error_message = "sns_kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "table_deletion_protection" {
  description = "Whether DynamoDB refuses to delete the rotation table (set false, apply, then destroy to remove it)."
  type        = bool
  default     = true
}

# --- server trust-store update (protocol v1.2, terraform/trust.tf) ----------------------

variable "trust_ack_timeout_seconds" {
  description = "How long one trust_req waits for the device's trust_ack or trust_err before it is sent again."
  type        = number
  default     = 900

  validation {
    condition     = var.trust_ack_timeout_seconds >= 60 && var.trust_ack_timeout_seconds <= 604800 && floor(var.trust_ack_timeout_seconds) == var.trust_ack_timeout_seconds
    error_message = "trust_ack_timeout_seconds must be a whole number from 60 to 604800 (7 days)."
  }
}

variable "trust_request_retries" {
  description = "How many times trust_req is sent again (with exponential backoff) before the device is reported as not updated (NO_ACK)."
  type        = number
  default     = 3

  validation {
    condition     = var.trust_request_retries >= 0 && var.trust_request_retries <= 10 && floor(var.trust_request_retries) == var.trust_request_retries
    error_message = "trust_request_retries must be a whole number from 0 to 10."
  }
}

variable "trust_retry_interval_seconds" {
  description = "Pause before the first re-sent trust_req; doubles for each later one."
  type        = number
  default     = 300

  validation {
    condition     = var.trust_retry_interval_seconds >= 1 && var.trust_retry_interval_seconds <= 86400 && floor(var.trust_retry_interval_seconds) == var.trust_retry_interval_seconds
    error_message = "trust_retry_interval_seconds must be a whole number from 1 to 86400."
  }
}
