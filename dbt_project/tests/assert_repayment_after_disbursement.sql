-- A repayment dated before its loan was disbursed: a booking-date error upstream.
{{ config(severity='warn', tags=['timeliness']) }}

select repayment_id, loan_id, disbursed_on, paid_at
from {{ ref('fct_repayments') }}
where cast(paid_at as date) < disbursed_on
