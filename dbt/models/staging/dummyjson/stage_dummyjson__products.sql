with

source as (

    select * from {{ source('dummyjson', 'products') }}

),

renamed as (

    select
        cast(id as integer) as product_id,
        title as product_name,
        category,
        brand,
        cast(price as decimal(12, 2)) as price,
        cast(stock as integer) as stock,
        filename as source_file
    from source

),

final as (

    -- every export is a full snapshot: keep each product from the newest file
    select * from renamed
    qualify row_number() over (partition by product_id order by source_file desc) = 1

)

select * from final
