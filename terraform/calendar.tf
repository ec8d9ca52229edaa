# The renewal calendar (issue 10 part 3; docs/fleet-scale.md "The renewal calendar, live"): a
# fleet an audit flags at once is spread over days. start-rotations defers each certificate whose
# place in its audit's cohort is after the next sweep (items in the rotation table, one partition
# per day), and this schedule runs start-rotations' sweep, which starts what is due. A certificate
# that expires within renewal_margin_days is never deferred.

variable "renewal_window_days" {
  description = "Spread the rotations of certificates an audit flags together over at least this many days (0: as fast as the pacing budget allows; the calendar still spreads a fleet larger than a day's budget over days)."
  type        = number
  default     = 0

  validation {
    condition     = var.renewal_window_days >= 0 && var.renewal_window_days <= 3650
    error_message = "renewal_window_days must be from 0 to 3650."
  }
}

variable "renewal_margin_days" {
  description = "A certificate that expires within this many days is rotated at once, never deferred by the renewal calendar, and none is deferred closer to its expiry than this."
  type        = number
  default     = 7

  validation {
    condition     = var.renewal_margin_days >= 0 && var.renewal_margin_days <= 3650
    error_message = "renewal_margin_days must be from 0 to 3650."
  }
}

variable "renewal_calendar_enabled" {
  description = "false starts every finding of an audit at once (admitted by the pacing budget), as before the calendar, and the sweep does nothing: set it false only when no deferred start is left (rotor status counts them)."
  type        = bool
  default     = true
}

locals {
  calendar_function = "start-rotations"
  # What start-rotations reads (functions/core/pacing-calendar.ts calendarSettings).
  calendar_environment = {
    ROTOR_RENEWAL_WINDOW_DAYS = tostring(var.renewal_window_days)
    ROTOR_RENEWAL_MARGIN_DAYS = tostring(var.renewal_margin_days)
    ROTOR_CALENDAR_ENABLED    = tostring(var.renewal_calendar_enabled)
  }
}

# Every 15 minutes: domain/pacing/calendar.ts DEFAULT_RENEWAL.sweepS (900 s), the horizon within
# which start-rotations starts a finding at once instead of deferring it.
resource "aws_cloudwatch_event_rule" "calendar_sweep" {
  name                = "${var.name_prefix}-calendar-sweep"
  description         = "Runs ${local.function_names[local.calendar_function]}'s sweep of the renewal calendar: starts the deferred rotations that are due."
  schedule_expression = "rate(15 minutes)"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "calendar_sweep" {
  rule      = aws_cloudwatch_event_rule.calendar_sweep.name
  target_id = "calendar-sweep"
  arn       = aws_lambda_function.function[local.calendar_function].arn
  input     = jsonencode({ sweep = "calendar" })
}

resource "aws_lambda_permission" "calendar_sweep" {
  statement_id   = "AllowCalendarSweepSchedule"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[local.calendar_function].function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.calendar_sweep.arn
  source_account = local.account
}
