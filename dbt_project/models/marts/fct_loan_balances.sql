-- One row per loan: what is owed (simple interest over the term), what was repaid, what is left.
with loans as (
    select * from {{ ref('stg_loans') }}
),

repaid as (
    select
        loan_id,
        count(*) as repayment_count,
        sum(amount) as total_repaid,
        max(paid_at) as last_repayment_at
    from {{ ref('fct_repayments') }}
    group by loan_id
),

balances as (
    select
        loans.loan_id,
        loans.customer_id,
        loans.product,
        loans.status,
        loans.disbursed_on,
        loans.principal_amount,
        cast(round(loans.principal_amount * (1 + loans.annual_rate_pct / 100 * loans.term_months / 12), 2)
            as decimal(12, 2)) as total_due,
        coalesce(repaid.total_repaid, 0) as total_repaid,
        coalesce(repaid.repayment_count, 0) as repayment_count,
        repaid.last_repayment_at
    from loans
    left join repaid on loans.loan_id = repaid.loan_id
)

select
    *,
    total_due - total_repaid as outstanding_balance
from balances
